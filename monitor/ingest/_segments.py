"""A stream's segments: which device run (``boot``) and device sample index each stream sample belongs to.

The detector needs one monotonic clock per stream, so the monitor keeps a
*stream index* that never goes back: it equals the device's own ``start``
indices until the first new segment, and a new segment (a reboot, a v1 device
restart, or a gap over ``max_gap_s``) continues at the stream's next index.
This table maps every stream index back to the device's index and run, so
annotations, bus messages and the alarm log can report the device's own
indices: ``device = stream - offset`` of the segment holding the sample.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["MAX_SEGMENTS", "Segment", "SegmentTable"]

MAX_SEGMENTS = 1024  # segments remembered per stream (older samples map through the oldest one kept)
_MAX_OLD_BOOTS = 64  # earlier boot ids remembered per stream, to tell their late frames from a new boot


@dataclass(frozen=True)
class Segment:
    """A run of a stream's samples with one mapping to the device's indices.

    ``number`` counts the stream's segments from 0; ``boot`` is the device's run
    (None for a v1 device); ``start`` is the segment's first stream index and
    ``device_start`` the device's index of that sample. ``label`` is a
    file-name-safe name of the device's index space: segments with the same
    label have increasing device indices (one annotation file each): ``""``
    for the stream's first, ``b<boot>`` from a new boot, ``s<number>`` from a
    v1 restart; a gap over ``max_gap_s`` within one boot keeps the label.
    """

    number: int
    boot: str | None
    start: int
    device_start: int
    label: str = ""

    @property
    def offset(self) -> int:
        """Stream index minus device index within this segment."""
        return self.start - self.device_start


class SegmentTable:
    """The segments of one stream, oldest first, and the boot ids it has seen."""

    def __init__(self, boot: str | None, start: int) -> None:
        self._segments = [Segment(0, boot, start, start)]
        self._starts = [start]
        self._old_boots: OrderedDict[str | None, None] = OrderedDict()

    @property
    def current(self) -> Segment:
        return self._segments[-1]

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(self._segments)

    def is_old_boot(self, boot: str | None) -> bool:
        """Whether ``boot`` is a run this stream has already left (its late frames are stale)."""
        return boot in self._old_boots

    def begin(self, boot: str | None, start: int, device_start: int) -> Segment:
        """A new segment from stream index ``start``, device index ``device_start``."""
        old = self.current
        if boot != old.boot:
            self._old_boots[old.boot] = None
            self._old_boots.pop(boot, None)
            if len(self._old_boots) > _MAX_OLD_BOOTS:
                self._old_boots.popitem(last=False)
        if start == old.start:  # the old segment holds no sample: the new one replaces it
            self._segments.pop()
            self._starts.pop()
        number = old.number + 1
        if boot != old.boot:
            label = f"b{boot}" if boot is not None else f"s{number}"
        else:
            label = old.label if boot is not None else f"s{number}"
        segment = Segment(number, boot, start, device_start, label)
        self._segments.append(segment)
        self._starts.append(start)
        if len(self._segments) > MAX_SEGMENTS:
            del self._segments[0]
            del self._starts[0]
        return segment

    def at(self, sample: int) -> Segment:
        """The segment holding stream index ``sample`` (the oldest kept for earlier ones)."""
        k = bisect.bisect_right(self._starts, sample) - 1
        return self._segments[max(k, 0)]

    def device_index(self, sample: int) -> int:
        """The device's own index of stream index ``sample``."""
        return sample - self.at(sample).offset
