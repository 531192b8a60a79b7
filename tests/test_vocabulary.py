from __future__ import annotations

from monitor.alarms import AlarmEvent
from monitor.vocabulary import (
    ALARM_KINDS,
    CLINICAL_KINDS,
    NORMAL_AUX,
    RHYTHM_AUX_ORDER,
    TECHNICAL_KINDS,
    priority_rank,
    rhythm_aux,
)


def test_every_kind_is_clinical_or_technical_once() -> None:
    assert set(CLINICAL_KINDS).isdisjoint(TECHNICAL_KINDS)
    assert set(CLINICAL_KINDS) | set(TECHNICAL_KINDS) == set(ALARM_KINDS)
    assert all(k.name == name for name, k in ALARM_KINDS.items())


def test_rhythm_aux_follows_the_order_of_seriousness() -> None:
    assert all(ALARM_KINDS[k].aux for k in RHYTHM_AUX_ORDER)
    assert rhythm_aux(set()) == NORMAL_AUX
    assert rhythm_aux({"pause", "couplet"}) == NORMAL_AUX  # events without a rhythm of their own
    assert rhythm_aux({"afib", "vtach"}) == "(VT"
    assert rhythm_aux({"brady": 1, "vfib": 2}) == "(VFL"


def test_an_event_takes_its_priority_from_the_vocabulary_technical_ones_too() -> None:
    conflict = AlarmEvent("bed1", "stream_conflict", "onset", 0, 0, 250.0, "Stream conflict", category="technical")
    assert conflict.priority == ALARM_KINDS["stream_conflict"].priority == "high"
    assert sorted(["low", "high", "medium", "bogus"], key=priority_rank) == ["high", "medium", "low", "bogus"]


def test_a_failed_output_is_a_technical_alarm_of_medium_priority() -> None:
    kind = ALARM_KINDS["output_failed"]
    assert (kind.category, kind.priority, kind.text, kind.aux) == ("technical", "medium", "Output failed", None)
    assert "output_failed" in TECHNICAL_KINDS


def test_monitoring_interrupted_is_a_technical_alarm_of_high_priority_ended_when_analysis_resumes() -> None:
    from monitor.vocabulary import END_REASONS, MONITORING_INTERRUPTED

    kind = ALARM_KINDS[MONITORING_INTERRUPTED]
    assert (kind.category, kind.priority, kind.text, kind.aux) == ("technical", "high", "Monitoring interrupted", None)
    assert MONITORING_INTERRUPTED in TECHNICAL_KINDS
    assert {"analysis resumed", "ended while its worker was replaced"} <= set(END_REASONS)
