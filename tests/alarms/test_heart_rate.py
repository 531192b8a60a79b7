"""The heart-rate method on its own: even number of intervals spanning the window, open interval, asystole."""

from __future__ import annotations

import pytest

from monitor.alarms import RhythmConfig, heart_rate

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
