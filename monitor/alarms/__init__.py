"""Alarms: rhythm logic on the sample clock, thresholds, alarm events and vitals."""

from monitor.alarms._events import AlarmEvent, Vitals
from monitor.alarms._heart_rate import heart_rate
from monitor.alarms._manager import AlarmManager, AlarmSink, StreamAlarms
from monitor.alarms._rhythm import RhythmAnalyzer
from monitor.alarms._settings import RhythmConfig, RhythmSettings, load_rhythm_settings
from monitor.alarms._states import SUPERSEDES

__all__ = [
    "SUPERSEDES",
    "AlarmEvent",
    "AlarmManager",
    "AlarmSink",
    "RhythmAnalyzer",
    "RhythmConfig",
    "RhythmSettings",
    "StreamAlarms",
    "Vitals",
    "heart_rate",
    "load_rhythm_settings",
]
