"""Asystole and pause need a signal without QRS-like activity: beats the detector missed, or an artefact that hides
them, are not asystole; real asystole, after an artefact too, still is."""

from __future__ import annotations

from monitor.alarms import AlarmEvent
from tests.alarms.test_rhythm import FS, onsets, regular, run


def kinds(events: list[AlarmEvent]) -> set[str]:
    return {e.kind for e in onsets(events)}


def test_a_gap_with_qrs_like_activity_is_neither_asystole_nor_pause() -> None:
    # the detector gave no beat from 19.5 s to 30 s, but the signal blocks there show QRS-like activity
    beats = regular(0.5, 20.1, 60) + regular(30, 40, 60)
    events, _ = run(beats, 40, quality={k: "clean" for k in range(19, 30)})
    assert not kinds(events) & {"asystole", "pause"}


def test_the_same_gap_without_qrs_like_activity_is_asystole() -> None:
    beats = regular(0.5, 20.1, 60) + regular(30, 40, 60)
    events, _ = run(beats, 40, quality={k: "no QRS" for k in range(19, 30)})
    on = onsets(events, "asystole")
    assert len(on) == 1 and on[0].onset_sample == round(19.5 * FS)
    assert 4.0 <= (on[0].sample - on[0].onset_sample) / FS <= 5.0


def test_an_artefact_delays_asystole_until_the_signal_has_been_quiet() -> None:
    # an artefact (blocks ending 22 and 23 s) in the middle of a real asystole: raised once the blocks covering the
    # last 4 s are quiet again, not never
    beats = regular(0.5, 20.1, 60) + regular(35, 40, 60)
    quality = {k: "no QRS" for k in range(19, 35)} | {21: "clean", 22: "clean"}
    events, _ = run(beats, 40, quality=quality)
    on = onsets(events, "asystole")
    assert len(on) == 1 and on[0].onset_sample == round(19.5 * FS)
    assert on[0].sample == round(26 * FS)  # the first second whose blocks (ending 24, 25 and 26 s) are quiet


def test_a_pause_with_a_missed_beat_in_it_is_no_pause() -> None:
    # RR of 3 s; the blocks judged in the gap show activity (a beat the detector did not report)
    beats = regular(0.5, 10.1, 60) + regular(13, 30, 60)
    events, _ = run(beats, 30, quality={10: "clean", 11: "clean", 12: "clean"})
    assert "pause" not in kinds(events)
    events, _ = run(beats, 30)  # judged without activity: a pause
    assert "pause" in kinds(events)
