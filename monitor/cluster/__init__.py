"""Cluster mode on NATS JetStream: ingest gateways, analysis workers owning partitions, durable alarms.

The embedded monitor (one process, no broker) is unchanged; ``ecg-monitor --cluster URL --role ...`` runs
one of these roles instead. See :mod:`monitor.cluster._layout` for what lives in JetStream.
"""

from monitor.cluster._alarms import (
    REPLACED_REASON,
    AlarmCollector,
    AlarmPublisher,
    AlarmReader,
    Delivery,
    alarm_record,
    bus_body,
)
from monitor.cluster._cli import build_cluster_parser, cluster_main
from monitor.cluster._gateway import FrameFilter, Gateway
from monitor.cluster._layout import (
    ALARMS_STREAM,
    FRAMES_STREAM,
    OPEN_BUCKET,
    OWNERS_BUCKET,
    ClusterLayout,
    decode_envelope,
    encode_envelope,
    ensure_layout,
    frame_subject,
    wait_jetstream,
)
from monitor.cluster._partition import Checkpoint, PartitionRunner
from monitor.cluster._server import LocalCluster, NatsNode, find_nats_server, move_leaders, stream_leaders
from monitor.cluster._watchdog import RESUMED_REASON, Watchdog, WatchdogSettings
from monitor.cluster._worker import PROGRESS_SUBJECT, Worker, WorkerSettings, lease_of, read_leases

__all__ = [
    "ALARMS_STREAM",
    "FRAMES_STREAM",
    "OPEN_BUCKET",
    "OWNERS_BUCKET",
    "PROGRESS_SUBJECT",
    "REPLACED_REASON",
    "RESUMED_REASON",
    "AlarmCollector",
    "AlarmPublisher",
    "AlarmReader",
    "Checkpoint",
    "ClusterLayout",
    "Delivery",
    "FrameFilter",
    "Gateway",
    "LocalCluster",
    "NatsNode",
    "PartitionRunner",
    "Watchdog",
    "WatchdogSettings",
    "Worker",
    "WorkerSettings",
    "alarm_record",
    "build_cluster_parser",
    "bus_body",
    "cluster_main",
    "decode_envelope",
    "encode_envelope",
    "ensure_layout",
    "find_nats_server",
    "frame_subject",
    "lease_of",
    "move_leaders",
    "read_leases",
    "stream_leaders",
    "wait_jetstream",
]
