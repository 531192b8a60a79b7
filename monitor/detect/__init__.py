"""Detection: streaming QRS detection and signal quality, per stream."""

from monitor.detect._qrs import DetectorBank, DetectorConfig, StreamingDetector
from monitor.detect._quality import QualityConfig, QualityTracker, TechnicalAlarm

__all__ = ["DetectorBank", "DetectorConfig", "QualityConfig", "QualityTracker", "StreamingDetector", "TechnicalAlarm"]
