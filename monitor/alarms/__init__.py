"""Alarms: rhythm logic on the sample clock, thresholds, alarm events and vitals."""

from monitor.alarms._rhythm import (
    AlarmEvent,
    RhythmAnalyzer,
    RhythmConfig,
    RhythmSettings,
    Vitals,
    load_rhythm_settings,
)

__all__ = ["AlarmEvent", "RhythmAnalyzer", "RhythmConfig", "RhythmSettings", "Vitals", "load_rhythm_settings"]
