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
from monitor.evaluation._crossdb import (
    DatabaseResult,
    DatabaseSpec,
    cross_markdown,
    parse_database,
    write_cross_report,
)
from monitor.evaluation._ec57 import RecordScore, has_beat_annotations, score_record, summarize, write_report
from monitor.evaluation._noise import NST_START_S, nst_mix, nst_name, write_nst_record
from monitor.evaluation._scoring import BEAT_SYMBOLS, MatchResult, match_beats, pair_beats, reference_beats

__all__ = [
    "ALARM_TYPES",
    "BEAT_SYMBOLS",
    "NST_START_S",
    "DatabaseResult",
    "DatabaseSpec",
    "Episode",
    "MatchResult",
    "RecordScore",
    "TypeScore",
    "alarm_episodes",
    "cross_markdown",
    "has_beat_annotations",
    "match_beats",
    "nst_mix",
    "nst_name",
    "pair_beats",
    "parse_database",
    "reference_beats",
    "reference_episodes",
    "score_alarms",
    "score_record",
    "summarize",
    "write_alarm_report",
    "write_cross_report",
    "write_nst_record",
    "write_report",
]
