"""Observability: status snapshot, health, latency histogram and Prometheus metrics."""

from monitor.observe._latency import LATENCY_BUCKETS, LatencyHistogram, LatencySnapshot
from monitor.observe._prometheus import BATCH_SIZE_BUCKETS, MetricsServer, MonitorCollector, attach, parse_address
from monitor.observe._status import (
    DEGRADED,
    OK,
    STREAM_STATES,
    SnapshotSource,
    StatusSnapshot,
    StreamStatus,
    health_of,
    retire,
)

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "DEGRADED",
    "LATENCY_BUCKETS",
    "OK",
    "STREAM_STATES",
    "LatencyHistogram",
    "LatencySnapshot",
    "MetricsServer",
    "MonitorCollector",
    "SnapshotSource",
    "StatusSnapshot",
    "StreamStatus",
    "attach",
    "health_of",
    "parse_address",
    "retire",
]
