"""A second lead kept for display only (a central station's bed view): never analysed.

:class:`DisplayLead` holds the last ``DISPLAY_S`` seconds of one channel other than the monitored one, in mV,
at the same stream indices as the monitored lead's samples (NaN where nothing came, or where a value was
not a voltage or out of range). ``StreamConfig.second_lead`` turns it on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitor.errors import FrameError
from monitor.ingest._config import MAX_ABS_MV
from monitor.ingest._ring import RingBuffer
from monitor.protocol import DataFrame

__all__ = ["DISPLAY_S", "DisplayLead", "display_lead"]

DISPLAY_S = 4.0  # seconds of the second lead kept


class DisplayLead:
    """Channel ``index`` (named ``name``) of a stream at ``fs``, from stream sample ``start`` on."""

    def __init__(self, index: int, name: str, fs: float, start: int) -> None:
        self.index = index
        self.name = name
        self.ring = RingBuffer(max(1, round(DISPLAY_S * fs)), channels=1)
        self.ring.end = start

    def append(self, frame: DataFrame, gap: int) -> None:
        """The frame's channel after ``gap`` missing samples (as the monitored lead's samples were stored)."""
        ring = self.ring
        try:
            y = frame.millivolts(self.index)
        except FrameError:  # units that are not a voltage: nothing to draw
            y = np.full(frame.n, np.nan)
        y[np.abs(y) > MAX_ABS_MV] = np.nan
        if gap >= ring.capacity:  # nothing of before the gap stays
            ring.end += gap - ring.capacity
            gap = ring.capacity
        if gap:
            ring.append(np.full(gap, np.nan))
        ring.append(y)


def display_lead(channels: Sequence[str], monitored: int, fs: float, start: int) -> DisplayLead | None:
    """The first channel other than the monitored one, None for a one-channel stream."""
    others = [i for i in range(len(channels)) if i != monitored]
    return DisplayLead(others[0], channels[others[0]], fs, start) if others else None
