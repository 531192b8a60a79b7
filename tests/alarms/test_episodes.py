"""Clean episodes: one ``alarm_id`` an episode, onset <= updates <= end, one text, no episode of a kind back-dated
before the previous one's end, no new episode inside the hold time of the previous one unless it is worse, and
rhythm annotations strictly ordered with one aux a change."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from monitor.alarms import AlarmEvent, AlarmManager, RhythmAnalyzer, RhythmConfig, StreamAlarms
from monitor.alarms._realarm import WORSENS, Figures, hold_time
from monitor.alarms._states import AlarmStates, Details
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


def check_episodes(events: list[AlarmEvent], config: RhythmConfig) -> None:
    open_: dict[str, AlarmEvent] = {}
    figures: dict[str, Figures] = {}  # the figures an open episode showed
    ended: dict[str, tuple[int, Figures]] = {}
    ids: set[str] = set()
    for e in events:
        if e.state == "onset":
            assert e.kind not in open_, f"two open episodes of {e.kind}"
            assert e.alarm_id not in ids, f"{e.alarm_id} reused"
            end, shown = ended.get(e.kind, (-1, Figures()))
            assert e.onset_sample > end, f"{e.kind} back-dated before the previous end"
            assert e.onset_sample <= e.sample
            if end >= 0 and (e.sample - end) / e.fs < hold_time(e.kind, config):
                # decided inside the hold time: worse than the episode that ended (than the figures it showed,
                # which are no more extreme than those it had)
                assert WORSENS[e.kind](config, shown, e.details), f"{e.kind} re-alarmed inside its hold, no worse"
            ids.add(e.alarm_id)
            open_[e.kind] = e
            figures[e.kind] = Figures()
        else:
            onset = open_[e.kind]
            assert e.alarm_id == onset.alarm_id and e.text == onset.text
            assert onset.onset_sample <= e.sample
        if e.state != "end":
            figures[e.kind].add(e.details)
        else:
            del open_[e.kind]
            ended[e.kind] = (e.sample, figures.pop(e.kind))
    assert not open_


@settings(max_examples=80, deadline=None)
@given(inputs())
def test_episodes_are_clean(data: Input) -> None:
    check_episodes(events_of(data), CONFIG)


def test_episodes_of_the_recorded_scenarios_are_clean() -> None:
    for scenario in SCENARIOS.values():
        check_episodes(drive(scenario)[0], RhythmConfig(**scenario.config))


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


# ------------------------------------------------------------------ re-alarm hold
def run_beats(beats: list[tuple[float, str]], until_s: float, config: RhythmConfig | None = None) -> list[AlarmEvent]:
    an = RhythmAnalyzer("s", FS, config)
    for t, label in beats:
        an.on_beat(round(t * FS), label)
    for k in range(1, int(until_s) + 1):
        an.on_quality(k * round(FS), "clean")
    end = round(until_s * FS)
    return an.advance(end)[0] + an.finish(end)


def sinus(start: float, stop: float, rr: float = 0.8) -> list[tuple[float, str]]:
    out, t = [], start
    while t < stop - 1e-9:
        out.append((round(t, 6), "N"))
        t += rr
    return out


def onset_samples(events: list[AlarmEvent], kind: str) -> list[int]:
    return [e.onset_sample for e in events if e.kind == kind and e.state == "onset"]


def test_a_couplet_inside_the_hold_after_the_last_one_ended_does_not_alarm_again() -> None:
    # couplets at 10 s (ends hold_s = 10 s after, at 21 s), 22 s (1 s after that end: held) and 40 s (alarms)
    beats = [*sinus(0.5, 10), (10.0, "V"), (10.4, "V"), *sinus(11.2, 22), (22.0, "V"), (22.4, "V")]
    beats += [*sinus(23.2, 40), (40.0, "V"), (40.4, "V"), *sinus(41.2, 60)]
    events = run_beats(beats, 60)
    assert onset_samples(events, "couplet") == [round(10.0 * FS), round(40.0 * FS)]
    ends = [e.sample for e in events if e.kind == "couplet" and e.state == "end"]
    assert ends[0] == round(21.0 * FS)


def vt_then(run: list[tuple[float, str]]) -> list[AlarmEvent]:
    """A VT of 8 beats at 171 bpm at 10 s (ends clear_s after its last beat, at 18 s), then ``run``."""
    beats = sinus(0.5, 10) + [(10.0 + 0.35 * k, "V") for k in range(8)] + sinus(13.2, 20)
    last = run[-1][0]
    return run_beats(beats + run + sinus(last + 0.8, last + 20), last + 20)


def test_vt_inside_its_hold_alarms_again_only_when_faster_or_longer() -> None:
    same = vt_then([(20.0 + 0.35 * k, "V") for k in range(8)])
    assert onset_samples(same, "vtach") == [round(10.0 * FS)]
    longer = vt_then([(20.0 + 0.35 * k, "V") for k in range(10)])
    assert onset_samples(longer, "vtach") == [round(10.0 * FS), round(20.0 * FS)]
    second = [e for e in longer if e.kind == "vtach" and e.state == "onset"][1]
    assert second.sample == round((20.0 + 0.35 * 8) * FS) and second.details["beats"] == 9  # the ninth beat
    faster = vt_then([(20.0 + 0.3 * k, "V") for k in range(8)])  # 200 bpm, at least update_bpm faster
    assert onset_samples(faster, "vtach") == [round(10.0 * FS), round(20.0 * FS)]
    after = vt_then([(30.0 + 0.35 * k, "V") for k in range(8)])  # 12 s after the end: past the hold
    assert onset_samples(after, "vtach") == [round(10.0 * FS), round(30.0 * FS)]


@pytest.mark.parametrize(
    ("kind", "first", "same", "worse"),
    [
        ("vrun", {"hr": 120.0, "beats": 4}, {"hr": 124.0, "beats": 4}, {"hr": 120.0, "beats": 5}),
        ("svt", {"hr": 120.0, "beats": 6}, {"hr": 110.0, "beats": 5}, {"hr": 125.0, "beats": 5}),
        ("afib", {"hr": 90.0, "irregularity": 0.2}, {"hr": 94.0, "irregularity": 0.4}, {"hr": 95.0}),
        ("tachy", {"hr": 130.0}, {"hr": 139.0}, {"hr": 141.0}),
        ("tachy_extreme", {"hr": 150.0}, {"hr": 154.0}, {"hr": 155.0}),
        ("brady", {"hr": 45.0}, {"hr": 41.0}, {"hr": 39.0}),
        ("brady_extreme", {"hr": 35.0}, {"hr": 31.0}, {"hr": 30.0}),
        ("pause", {"pause_s": 3.0}, {"pause_s": 3.4}, {"pause_s": 3.5}),
        ("pvc_frequent", {"pvc_per_min": 12}, {"pvc_per_min": 16}, {"pvc_per_min": 17}),
        ("asystole", {"since_s": 4.0}, None, {"since_s": 4.0}),
        ("vfib", {"blocks": 4}, None, {"blocks": 4}),
        ("bigeminy", {}, {}, None),
        ("trigeminy", {}, {}, None),
        ("couplet", {"beats": 2}, {"beats": 2}, None),
    ],
)
def test_what_is_worse_than_the_episode_that_ended(
    kind: str, first: Details, same: Details | None, worse: Details | None
) -> None:
    """Each kind's rule of the table in :mod:`monitor.alarms._realarm`, inside the hold and once it has passed."""
    cfg = RhythmConfig()
    hold = round(hold_time(kind, cfg) * FS)
    for details, expected in ((same, False), (worse, True)):
        if details is None:
            continue
        states = AlarmStates("s", FS, cfg, ready=0)
        states.sustain(kind, 100, 100, first, "")
        states.end(kind, 1000, "condition cleared")
        states.sustain(kind, 1100, 1100, details, "")  # inside the hold
        assert (kind in states) is expected, (kind, details)
        if not expected:
            states.sustain(kind, 1000 + hold, 1000 + hold, details, "")  # the hold has passed: it alarms
            assert kind in states and states.onset(kind) == 1000 + hold
