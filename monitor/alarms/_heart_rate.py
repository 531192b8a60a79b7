"""The heart rate the monitor reports every second, from the most recent beats.

Method (:func:`heart_rate`, thresholds from :class:`~monitor.alarms.RhythmConfig`):

1. The RR intervals are taken back from the latest beat, newest first, until
   they span at least ``hr_window_s`` seconds **and** are an even number of
   intervals, or until there are ``hr_max_beats`` of them. An even number
   holds as many long as short intervals of an alternating (bigeminal)
   rhythm, so the rate does not swing from one beat to the next.
2. The rate is the number of intervals over their total duration: the true
   mean rate, also of irregular rhythms (a mean of instantaneous rates would
   overstate it).
3. Open interval: when the wait since the latest beat is longer than every
   interval in that window, the wait so far counts as one more interval, so
   the rate falls during a pause instead of holding its last value.
4. Asystole: once the wait reaches ``asystole_s`` the rate is 0.

Before the first beat, and with a single beat, there is no rate (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["heart_rate"]


def heart_rate(
    beats: Sequence[int],
    t: int,
    fs: float,
    *,
    window_s: float,
    max_intervals: int,
    asystole_s: float,
) -> float | None:
    """The heart rate (bpm) at sample ``t`` from the beat samples ``beats`` (ascending, all before ``t``).

    ``window_s``, ``max_intervals`` and ``asystole_s`` are ``hr_window_s``,
    ``hr_max_beats`` and ``asystole_s`` of the stream's configuration; see the
    module docstring for the method.
    """
    if not beats:
        return None
    last = beats[-1]
    if (t - last) / fs >= asystole_s:
        return 0.0
    intervals: list[float] = []
    total = 0.0
    for i in range(len(beats) - 1, 0, -1):
        rr = (beats[i] - beats[i - 1]) / fs
        if len(intervals) >= max_intervals or (total >= window_s and len(intervals) % 2 == 0):
            break
        intervals.append(rr)
        total += rr
    if not intervals:
        return None
    n = len(intervals)
    open_s = (t - last) / fs
    if open_s > max(intervals):  # longer than any recent interval: the wait so far counts as one
        return 60.0 * (n + 1) / (total + open_s)
    return 60.0 * n / total
