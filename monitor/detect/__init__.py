"""Detection: streaming QRS detection, signal quality and beat assembly, per stream."""

from monitor.detect._beats import BeatAssembler
from monitor.detect._qrs import DetectorBank, DetectorConfig, StreamingDetector
from monitor.detect._quality import QualityConfig, QualityTracker, TechnicalAlarm

__all__ = [
    "BeatAssembler",
    "DetectorBank",
    "DetectorConfig",
    "QualityConfig",
    "QualityTracker",
    "StreamingDetector",
    "TechnicalAlarm",
]
