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
    for the stream's first, ``b<boot>`` from a new boot (an earlier boot
    taking the stream back gets its label again), ``s<number>`` when the
    device's indices go back within one boot (a v1 restart); a segment whose
    device indices go on increasing in the same boot (a gap over
    ``max_gap_s``) keeps the label.
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
        self._old_boots: OrderedDict[str | None, str] = OrderedDict()  # earlier boots and their labels
        self.late_boot: str | None = None  # the earlier boot whose frames came last ...
        self.late_run = 0  # ... and how many in a row (the owner sets 0 when the current boot sends)
        self._late_frames = 0  # frames of earlier boots since the current boot began
        self._conflict = False  # counted as a conflict since the current boot began

    @property
    def current(self) -> Segment:
        return self._segments[-1]

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(self._segments)

    def is_old_boot(self, boot: str | None) -> bool:
        """Whether ``boot`` is a run this stream has already left (its late frames are stale)."""
        return boot in self._old_boots

    def other_boot(self, boot: str | None, restart_frames: int) -> str:
        """What a frame of ``boot`` (not the current one) is: ``"new"`` (a reboot, or an earlier boot
        taking the stream back with ``restart_frames`` frames in a row), ``"old"`` (a late frame of
        an earlier boot, rejected) or ``"conflict"`` (the same, the first time ``restart_frames``
        of them arrive with frames of the current boot between them)."""
        run = self.late_run + 1 if self.late_run and self.late_boot == boot else 1
        if boot not in self._old_boots or run >= restart_frames:
            return "new"
        self.late_boot, self.late_run = boot, run
        self._late_frames += 1
        if self._late_frames >= restart_frames and run < self._late_frames and not self._conflict:
            self._conflict = True
            return "conflict"
        return "old"

    def begin(self, boot: str | None, start: int, device_start: int) -> Segment:
        """A new segment from stream index ``start``, device index ``device_start``."""
        old = self.current
        number = old.number + 1
        if boot != old.boot:
            self.late_run = self._late_frames = 0
            self._conflict = False
            self._old_boots[old.boot] = old.label
            resumed = self._old_boots.pop(boot, None)  # an earlier boot taking the stream back keeps its label
            if len(self._old_boots) > _MAX_OLD_BOOTS:
                self._old_boots.popitem(last=False)
            label = resumed if resumed is not None else f"b{boot}" if boot is not None else f"s{number}"
        else:  # the same index space while the device's indices go on increasing
            label = old.label if device_start >= start - old.offset else f"s{number}"
        if start == old.start:  # the old segment holds no sample: the new one replaces it
            self._segments.pop()
            self._starts.pop()
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
