"""Real-time ECG arrhythmia monitor: ingest, detection, alarms, outputs."""

from typing import TYPE_CHECKING, Any

from monitor.detect import DetectorBank, DetectorConfig, StreamingDetector
from monitor.errors import (
    ConfigError,
    EcgMonitorError,
    FrameError,
    RecordError,
    RecordNotFoundError,
    SourceError,
)
from monitor.evaluation import BEAT_SYMBOLS, MatchResult, match_beats, pair_beats, reference_beats
from monitor.ingest import (
    Ingest,
    RingBuffer,
    SequenceTracker,
    StreamConfig,
    StreamProcessor,
    StreamStats,
    beats_of_signal,
    detect_beats,
)
from monitor.outputs import ANNOTATION_EXT, AnnotationWriter, LiveView
from monitor.protocol import DataFrame, EndOfStream, decode_frame, encode_data, encode_eos

__all__ = [
    "ANNOTATION_EXT",
    "BEAT_SYMBOLS",
    "AnnotationWriter",
    "ConfigError",
    "DataFrame",
    "DetectorBank",
    "DetectorConfig",
    "EcgMonitorError",
    "EndOfStream",
    "FrameError",
    "Ingest",
    "LiveView",
    "MatchResult",
    "Monitor",
    "MonitorConfig",
    "RecordError",
    "RecordNotFoundError",
    "RecordSummary",
    "RingBuffer",
    "SequenceTracker",
    "Source",
    "SourceError",
    "StreamConfig",
    "StreamProcessor",
    "StreamStats",
    "StreamingDetector",
    "beats_of_signal",
    "decode_frame",
    "detect_beats",
    "encode_data",
    "encode_eos",
    "match_beats",
    "pair_beats",
    "parse_source",
    "reference_beats",
]

# The application layer needs `replay`, which itself needs this package's wire
# format and errors: load it on first use to keep the import graph acyclic.
_LAZY = {"Monitor", "MonitorConfig", "RecordSummary", "Source", "parse_source"}

if TYPE_CHECKING:
    from monitor.app import Monitor, MonitorConfig, RecordSummary, Source, parse_source


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import monitor.app

        return getattr(monitor.app, name)
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
