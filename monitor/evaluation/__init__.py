"""Scoring against reference annotations: beat matching, AAMI EC57 statistics, alarm episodes."""

from monitor.evaluation._alarms import (
    ALARM_TYPES,
    Episode,
    TypeScore,
    alarm_episodes,
    reference_episodes,
    score_alarms,
    write_alarm_report,
)
from monitor.evaluation._ec57 import RecordScore, score_record, summarize, write_report
from monitor.evaluation._noise import NST_START_S, nst_mix, nst_name, write_nst_record
from monitor.evaluation._scoring import BEAT_SYMBOLS, MatchResult, match_beats, pair_beats, reference_beats

__all__ = [
    "ALARM_TYPES",
    "BEAT_SYMBOLS",
    "NST_START_S",
    "Episode",
    "MatchResult",
    "RecordScore",
    "TypeScore",
    "alarm_episodes",
    "match_beats",
    "nst_mix",
    "nst_name",
    "pair_beats",
    "reference_beats",
    "reference_episodes",
    "score_alarms",
    "score_record",
    "summarize",
    "write_alarm_report",
    "write_nst_record",
    "write_report",
]
