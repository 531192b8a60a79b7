"""Outputs: the alert bus, the alarm log, annotation files, the live view and the bedside bridge.

The alert-bus message format (``check_body``, ``decode_message``, the topic and
field vocabulary) lives in :mod:`monitor.protocol` and is re-exported here for
the bridge's callers.
"""

from monitor.outputs._alarmlog import LOGGED_STATES, AlarmLog, AlarmLogError, default_path
from monitor.outputs._annotations import (
    ANNOTATION_EXT,
    AnnotationWriter,
    annotation_name,
    annotation_record,
    stream_of_annotation,
)
from monitor.outputs._bridge import (
    PROG,
    AlertBridge,
    BridgeEvent,
    BridgeOutput,
    BridgeStats,
    CommandRunner,
    format_message,
    local_time,
    printable,
)
from monitor.outputs._bus import AlertBus, located_alarm_body, monitor_id
from monitor.outputs._located import Locate, Located, stream_index
from monitor.outputs._reviews import acks_of, read_strip, store_ack, store_strip, strip_png
from monitor.outputs._serve import EventOutput, serve, snapshot_dealer
from monitor.outputs._sink import (
    AlarmLogSink,
    AlarmRecorder,
    AnnotationSink,
    BusSink,
    LogLineSink,
    Sink,
    SinkFailure,
    Sinks,
    ViewSink,
)
from monitor.outputs._strips import Strip, StripRecorder
from monitor.outputs._view import LiveView, stream_status
from monitor.outputs._wave import WaveChunk, WaveDecimator, WaveTap
from monitor.protocol import (
    ALARM_KINDS,
    ALARM_STATES,
    BEAT_LABELS,
    CATEGORIES,
    HEALTH,
    MESSAGE_FIELDS,
    MESSAGE_TYPES,
    PRIORITIES,
    SCHEMA,
    TOPICS,
    alarm_body,
    check_body,
    decode_message,
    subscriptions,
)

__all__ = [
    "ALARM_KINDS",
    "ALARM_STATES",
    "ANNOTATION_EXT",
    "BEAT_LABELS",
    "CATEGORIES",
    "HEALTH",
    "LOGGED_STATES",
    "MESSAGE_FIELDS",
    "MESSAGE_TYPES",
    "PRIORITIES",
    "PROG",
    "SCHEMA",
    "TOPICS",
    "AlarmLog",
    "AlarmLogError",
    "AlarmLogSink",
    "AlarmRecorder",
    "AlertBridge",
    "AlertBus",
    "AnnotationSink",
    "AnnotationWriter",
    "BridgeEvent",
    "BridgeOutput",
    "BridgeStats",
    "BusSink",
    "CommandRunner",
    "EventOutput",
    "LiveView",
    "Locate",
    "Located",
    "LogLineSink",
    "Sink",
    "SinkFailure",
    "Sinks",
    "Strip",
    "StripRecorder",
    "ViewSink",
    "WaveChunk",
    "WaveDecimator",
    "WaveTap",
    "acks_of",
    "alarm_body",
    "annotation_name",
    "annotation_record",
    "check_body",
    "decode_message",
    "default_path",
    "format_message",
    "local_time",
    "located_alarm_body",
    "monitor_id",
    "printable",
    "read_strip",
    "serve",
    "snapshot_dealer",
    "store_ack",
    "store_strip",
    "stream_index",
    "stream_of_annotation",
    "stream_status",
    "strip_png",
    "subscriptions",
]
