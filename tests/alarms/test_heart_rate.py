"""The heart-rate method: even number of intervals spanning the window, open interval, asystole, and no rate while
the signal cannot be measured until the window is measured again."""

from __future__ import annotations

import pytest

from monitor.alarms import RhythmConfig, heart_rate
from tests.alarms.test_rhythm import regular, run

FS = 250.0
CFG = RhythmConfig()


def hr(beats_s: list[float], t_s: float) -> float | None:
    return heart_rate(
        [round(b * FS) for b in beats_s],
        round(t_s * FS),
        FS,
        window_s=CFG.hr_window_s,
        max_intervals=CFG.hr_max_beats,
        asystole_s=CFG.asystole_s,
    )


def test_no_rate_before_two_beats() -> None:
    assert hr([], 1.0) is None
    assert hr([0.5], 1.0) is None


def test_an_even_number_of_intervals_spanning_the_window() -> None:
    # alternating 0.5 / 1.0 s: five intervals would span 4 s but be odd; six (4.5 s) give the true 80 bpm
    beats, t = [], 0.0
    for k in range(12):
        beats.append(t)
        t += 0.5 if k % 2 == 0 else 1.0
    assert hr(beats, beats[-1] + 0.1) == pytest.approx(80.0)
    assert hr(beats[:-1], beats[-2] + 0.1) == pytest.approx(80.0)


def test_no_more_than_hr_max_beats_intervals() -> None:
    # 0.2 s intervals after a slow start: the last 16 span only 3.2 s, yet the slow ones do not count
    beats = [0.0, 2.0, 4.0] + [4.0 + 0.2 * k for k in range(1, 21)]
    assert hr(beats, beats[-1] + 0.1) == pytest.approx(300.0)


def test_open_interval_during_a_pause_and_zero_in_asystole() -> None:
    beats = [float(k) for k in range(10)]  # 60 bpm, last beat at 9 s
    assert hr(beats, 9.5) == pytest.approx(60.0)
    assert hr(beats, 10.0) == pytest.approx(60.0)  # the wait equals the longest interval: not counted yet
    assert hr(beats, 11.0) == pytest.approx(60.0 * 5 / (4 + 2.0))  # four intervals and the 2 s wait
    assert hr(beats, 13.0) == 0.0


def hr_since(beats_s: list[float], t_s: float, since_s: float) -> float | None:
    return heart_rate(
        [round(b * FS) for b in beats_s],
        round(t_s * FS),
        FS,
        window_s=CFG.hr_window_s,
        max_intervals=CFG.hr_max_beats,
        asystole_s=CFG.asystole_s,
        since=round(since_s * FS),
    )


def test_no_rate_across_a_signal_gap_until_the_window_is_measured_again() -> None:
    before = [float(k) for k in range(10)]  # 60 bpm up to 9 s, then no signal up to 15 s
    assert hr_since(before, 14.0, 14.0) is None  # while it lasts: no rate, not 0
    assert hr_since(before, 16.0, 15.0) is None  # back, no beat yet
    after = [15.3 + k for k in range(6)]  # 60 bpm again from 15.3 s
    for n in range(1, 5):  # 1 to 3 intervals (1-3 s) do not fill the window; 4 (4 s, even) do
        t = after[n] + 0.1
        expected = 60.0 if n == 4 else None
        assert hr_since(before + after[: n + 1], t, 15.0) == expected, n
    # an interval across the gap never counts: 60 bpm, not a rate pulled down by the 6.3 s interval
    assert hr_since(before + after, after[-1] + 0.1, 15.0) == pytest.approx(60.0)


def test_a_flat_measurable_signal_after_the_gap_is_asystole() -> None:
    before = [float(k) for k in range(10)]
    assert hr_since(before, 18.9, 15.0) is None
    assert hr_since(before, 19.0, 15.0) == 0.0  # asystole_s of measurable signal with no beat
    assert hr_since([*before, 15.5], 19.5, 15.0) == 0.0


def test_vitals_hr_is_none_while_the_signal_is_lost_and_back_once_measured_again() -> None:
    beats = regular(0.5, 20.1, 60) + regular(30.2, 50, 60)
    quality = {k: "signal lost" if k < 25 else "leads off" for k in range(20, 30)}  # no signal over (20 s, 30 s]
    _, vitals = run(beats, 50, quality=quality)
    by_s = {v.sample // round(FS): v.hr for v in vitals}
    assert by_s[20] == pytest.approx(60.0)
    # never 0 and never a figure from the gap: nothing until four intervals (4 s) measured from 30.2 s, at 34.2 s
    assert [by_s[k] for k in range(21, 35)] == [None] * 14
    assert [by_s[k] for k in range(35, 50)] == [pytest.approx(60.0)] * 15


def test_vitals_hr_reads_zero_in_asystole_on_a_valid_signal() -> None:
    _, vitals = run(regular(0.5, 20.1, 60), 30)
    by_s = {v.sample // round(FS): v.hr for v in vitals}
    falling = by_s[23]
    assert falling is not None and 0 < falling < 59  # the open interval: falling, not held
    assert [by_s[k] for k in range(24, 30)] == [0.0] * 6
