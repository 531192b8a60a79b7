"""Clean episodes: one ``alarm_id`` an episode, onset <= updates <= end, one text, no episode of a kind back-dated
before the previous one's end, and rhythm annotations strictly ordered with one aux a change."""

from __future__ import annotations

from hypothesis import given, settings

from monitor.alarms import AlarmEvent, AlarmManager, RhythmAnalyzer, StreamAlarms
from monitor.detect import TechnicalAlarm
from tests.alarms.test_partition import CONFIG, FS, Input, inputs
from tests.alarms.test_rhythm_regression import SCENARIOS, drive


def events_of(data: Input) -> list[AlarmEvent]:
    beats, blocks, end = data
    an = RhythmAnalyzer("s", FS, CONFIG)
    for s, label, ready in beats:
        an.on_beat(s, label, ready)
    for b, q in blocks:
        an.on_quality(b, q)
    return an.advance(end)[0] + an.finish(end)


def check_episodes(events: list[AlarmEvent]) -> None:
    open_: dict[str, AlarmEvent] = {}
    ended: dict[str, int] = {}
    ids: set[str] = set()
    for e in events:
        if e.state == "onset":
            assert e.kind not in open_, f"two open episodes of {e.kind}"
            assert e.alarm_id not in ids, f"{e.alarm_id} reused"
            assert e.onset_sample > ended.get(e.kind, -1), f"{e.kind} back-dated before the previous end"
            assert e.onset_sample <= e.sample
            ids.add(e.alarm_id)
            open_[e.kind] = e
        else:
            onset = open_[e.kind]
            assert e.alarm_id == onset.alarm_id and e.text == onset.text
            assert onset.onset_sample <= e.sample
            if e.state == "end":
                del open_[e.kind]
                ended[e.kind] = e.sample
    assert not open_


@settings(max_examples=80, deadline=None)
@given(inputs())
def test_episodes_are_clean(data: Input) -> None:
    check_episodes(events_of(data))


def test_episodes_of_the_recorded_scenarios_are_clean() -> None:
    for scenario in SCENARIOS.values():
        check_episodes(drive(scenario)[0])


class RhythmSink:
    def __init__(self) -> None:
        self.rhythm: list[tuple[int, str]] = []

    def on_alarm(self, event: AlarmEvent) -> None:
        pass

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self.rhythm.append((sample, aux))

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        pass


@settings(max_examples=80, deadline=None)
@given(inputs())
def test_rhythm_annotations_strictly_ordered_one_aux_a_change(data: Input) -> None:
    sink = RhythmSink()
    manager = AlarmManager(sink, silence_s=5.0, shed_clear_s=10.0)
    manager.emit(StreamAlarms("s", FS), events_of(data))
    samples = [s for s, _ in sink.rhythm]
    assert samples == sorted(set(samples))
    assert all(a[1] != b[1] for a, b in zip(sink.rhythm, sink.rhythm[1:], strict=False))


def test_back_dated_onset_is_annotated_after_the_previous_change() -> None:
    sink = RhythmSink()
    manager = AlarmManager(sink, silence_s=5.0, shed_clear_s=10.0)
    alarms = StreamAlarms("s", FS)
    afib = AlarmEvent("s", "afib", "onset", 1000, 1500, FS, "AF")
    vt = AlarmEvent("s", "vtach", "onset", 1800, 2500, FS, "VT")
    manager.emit(alarms, [afib, AlarmEvent("s", "afib", "end", 1000, 2000, FS, "AF"), vt])
    assert [s for s, _ in sink.rhythm] == [1000, 2000, 2001]
