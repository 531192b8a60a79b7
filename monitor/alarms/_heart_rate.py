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
5. Signal loss: only the beats after ``since``, the end of the latest stretch
   of signal that could not be measured (signal lost or leads off), count.
   While that stretch lasts there is no rate (``None``, not 0: the wait is not
   a pause), and after it the rate comes back only once the intervals measured
   since fill the window of step 1 (an even number spanning ``hr_window_s``, or
   ``hr_max_beats`` of them), never from an interval across the gap nor from a
   partial window. A measurable signal with no beat for ``asystole_s`` after
   the stretch is asystole again: 0.

Before the first beat, and with a single beat, there is no rate (``None``).
"""

from __future__ import annotations

import bisect
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
    since: int | None = None,
) -> float | None:
    """The heart rate (bpm) at sample ``t`` from the beat samples ``beats`` (ascending, all before ``t``).

    ``window_s``, ``max_intervals`` and ``asystole_s`` are ``hr_window_s``,
    ``hr_max_beats`` and ``asystole_s`` of the stream's configuration;
    ``since``: the end of the latest stretch of signal that could not be
    measured (at or before ``t``), if any. See the module docstring for the method.
    """
    if not beats:
        return None
    if since is not None:
        beats = beats[bisect.bisect_right(beats, since) :]
        if not beats:
            return 0.0 if (t - since) / fs >= asystole_s else None
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
    if since is not None and not (n >= max_intervals or (total >= window_s and n % 2 == 0)):
        return None  # the window is not filled yet with intervals measured after the signal came back
    open_s = (t - last) / fs
    if open_s > max(intervals):  # longer than any recent interval: the wait so far counts as one
        return 60.0 * (n + 1) / (total + open_s)
    return 60.0 * n / total
