"""The monitored lead of a frame in mV, with a fast path for integer samples that cannot go out of range."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.ingest._config import MAX_ABS_MV
from monitor.protocol import DataFrame

__all__ = ["LeadConverter", "choose_lead"]

_SLOW = None  # conversion plan: the general path (DataFrame.millivolts and per-sample checks)
_UNKNOWN: Any = object()  # no plan made yet for a format
_INT_RANGE = {"<i2": (-(2**15), 2**15 - 1), "<i4": (-(2**31), 2**31 - 1)}
_MAX_PLANS = 16  # formats remembered per stream (a device cycling through formats keeps the newest)
_Plan = tuple[float, float, float, bytes | None]
_Key = tuple[str, float, float, str, int | None]


def _plan(dtype: str, gain: float, baseline: float, scale: float | None, invalid: int | None) -> _Plan | None:
    """``(gain, baseline, mV scale, invalid value's bytes)`` when every raw value of ``dtype``
    maps to a finite value within :data:`MAX_ABS_MV`; None (the general path) otherwise."""
    limits = _INT_RANGE.get(dtype)
    if scale is None or limits is None:
        return _SLOW
    bound = (-limits[0] + abs(baseline)) / abs(gain) * scale
    if not bound <= 0.5 * MAX_ABS_MV:  # a wide margin over rounding
        return _SLOW
    pattern = None
    if invalid is not None and limits[0] <= invalid <= limits[1]:
        pattern = np.array(invalid, dtype=dtype).tobytes()
    return (gain, baseline, scale, pattern)


def choose_lead(channels: Sequence[str], preference: Sequence[int | str]) -> tuple[int, bool]:
    """The channel to monitor, and whether it is a fallback.

    The first entry of ``preference`` the stream has wins: a name matches a
    channel name (stripped, case-insensitive; the first such channel), an
    index a channel that exists. When none does, channel 0 is monitored and
    the choice is a fallback (counted by the caller, never a rejection).
    """
    names = [c.strip().casefold() for c in channels]
    for want in preference:
        if isinstance(want, str):
            key = want.strip().casefold()
            if key in names:
                return names.index(key), False
        elif 0 <= want < len(channels):
            return want, False
    return 0, True


class LeadConverter:
    """Converts one lead of a stream's frames to mV, as :meth:`DataFrame.millivolts` does."""

    def __init__(self, lead: int) -> None:
        self.lead = lead
        self._plans: dict[_Key, _Plan | None] = {}

    def __call__(self, frame: DataFrame) -> tuple[NDArray[np.float64], bool]:
        """The monitored lead in mV (as :meth:`DataFrame.millivolts`), and whether it is clean.

        Clean: integer samples with a gain, baseline and unit under which no
        raw value can map beyond :data:`MAX_ABS_MV` (e.g. 16-bit samples at
        200 units/mV), and none equal to the ``invalid`` value. Then every value
        is finite and in range, so the per-sample checks are skipped; the
        arithmetic is the same as :meth:`DataFrame.millivolts`, value for value.
        """
        lead = self.lead
        key = (frame.dtype, frame.gain[lead], frame.baseline[lead], frame.units[lead], frame.invalid)
        plan = self._plans.get(key, _UNKNOWN)
        if plan is _UNKNOWN:
            plan = self._plans[key] = _plan(frame.dtype, key[1], key[2], frame.mv_scale(lead), frame.invalid)
            if len(self._plans) > _MAX_PLANS:
                del self._plans[next(iter(self._plans))]
        if plan is _SLOW:
            return frame.millivolts(lead), False
        gain, baseline, scale, pattern = plan
        # the invalid value's bytes anywhere in the samples (any channel, any offset): the general path
        if pattern is not None and pattern in frame.samples.tobytes():
            return frame.millivolts(lead), False
        raw = frame.samples[:, lead]
        x = raw.astype(np.float64)
        if baseline != 0:
            x -= baseline
        x /= gain
        if scale != 1.0:
            x *= scale
        return x, True
