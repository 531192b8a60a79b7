"""Where a stream sample lies on its device: the device's own index, its run and its index space.

The monitor keeps one monotonic *stream index* per stream, and the rhythm
logic and alarm events use it (they need one clock). A device's own indices
may restart (a reboot, a v1 restart) or jump (a gap over ``max_gap_s``); the
ingest maps every stream index back to the device's (its segment table, see
:mod:`monitor.ingest`). The outputs translate at the edge: each sink that
writes a sample index asks a :data:`Locate` callable, ``locate(stream,
sample)``, for the :class:`Located` place of the sample, and writes
``Located.sample``. The monitor passes its lookup to the sinks it builds;
:func:`stream_index` (the default) keeps the stream's index, for sinks used
without a monitor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Locate", "Located", "stream_index"]


@dataclass(frozen=True)
class Located:
    """A stream sample as the device numbers it.

    ``sample`` is the device's own index; ``boot`` the device's run (None for
    a v1 device, or when unknown); ``segment`` the label of the device's
    index space (``""`` for the stream's first, ``b<boot>`` after a reboot,
    ``s<n>`` after the device's indices went back within one run; see
    ``monitor.ingest.Segment``): within one label the device's indices only
    increase. ``segmented`` tells whether the stream has begun a second
    segment: until then device and stream indices are the same, and the
    messages leave out ``boot`` and ``segment`` (they are exactly as before
    the fields existed).
    """

    sample: int
    boot: str | None = None
    segment: str = ""
    segmented: bool = False

    @property
    def label(self) -> str | None:
        """The ``segment`` field of a message about this sample: None (left out) while the stream is unbroken."""
        return self.segment if self.segmented else None

    @property
    def note(self) -> str:
        """`` (boot 7, segment b7)`` for display after a sample or time, once the stream has more than one
        segment; else nothing."""
        if not self.segmented:
            return ""
        segment = f"segment {self.segment or 'first'}"
        return f" ({segment})" if self.boot is None else f" (boot {self.boot}, {segment})"


Locate = Callable[[str, int], Located]
"""``locate(stream, sample)``: the place of stream index ``sample`` on the device of ``stream``."""


def stream_index(stream: str, sample: int) -> Located:
    """The identity lookup: the stream's index as the device's, in the first segment."""
    return Located(sample)
