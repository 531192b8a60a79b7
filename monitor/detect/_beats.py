"""Beat assembly: R peaks of one stream become beats (window, RR context), once their signal has arrived.

A detected R peak is sent as a :class:`~engine.Beat` when its window has
arrived, the signal quality around it is judged, and the next R peak is known
(or cannot come within ``rr_wait_s``). Peaks in unusable signal are suppressed;
peaks whose QRS is smaller than ``min_qrs_mv`` are noise (IEC 60601-2-27: such
complexes are not counted, so asystole reads as asystole). The RR context of a
beat comes from the beats sent before it in the same segment.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from engine import Beat, TemplateTracker
from monitor.detect._quality import QualityTracker

__all__ = ["BeatAssembler", "BeatCounts", "SampleStore"]


class SampleStore(Protocol):
    """The samples of one stream held for beat windows (a ring buffer of the monitored lead)."""

    @property
    def start(self) -> int: ...  # absolute index of the oldest sample held

    @property
    def end(self) -> int: ...  # absolute index one past the newest sample

    def read(self, start: int, stop: int) -> NDArray[np.floating]: ...  # samples (n, channels)


class BeatCounts(Protocol):
    """Where the assembler counts what it sends and what it drops."""

    beats: int  # beats sent
    suppressed: int  # peaks in unusable signal, not sent
    low_amplitude: int  # peaks below min_qrs_mv, not sent


class BeatAssembler:
    """Turns one stream's R peaks into beats; sample indices are the stream's."""

    def __init__(
        self,
        stream: str,
        fs: float,
        samples: SampleStore,
        quality: QualityTracker,
        counts: BeatCounts,
        *,
        window_pre_s: float,
        window_post_s: float,
        rr_wait_s: float,
        min_qrs_mv: float,
        keep_peaks: bool = False,
        origin: int = 0,
    ) -> None:
        self.stream = stream
        self.fs = fs
        self.samples = samples
        self.quality = quality
        self.counts = counts
        self.min_qrs_mv = min_qrs_mv
        self.keep_peaks = keep_peaks
        self.segment_origin = origin  # first sample of the current segment: windows never reach before it
        self._pre = round(window_pre_s * fs)
        self._post = round(window_post_s * fs)
        self._rr_wait = round(rr_wait_s * fs)
        self._qrs_half = max(1, round(0.05 * fs))
        self._pending: deque[int] = deque()  # detected peaks not yet sent (absolute)
        self._last_sent: int | None = None
        self._rr_recent: deque[float] = deque(maxlen=8)
        self._rr_mean: float | None = None
        self.template = TemplateTracker(fs, self._pre, self._pre + self._post)
        self.last_peak: int | None = None
        self.peaks: list[int] = []  # every R peak sent (only with keep_peaks)

    @property
    def pending(self) -> Sequence[int]:
        """Detected R peaks not yet sent as beats (oldest first)."""
        return self._pending

    def restart(self, origin: int) -> None:
        """A new segment starts at ``origin``: unsent peaks and the RR context are dropped."""
        self.segment_origin = origin
        self._pending.clear()
        self._last_sent = None
        self._rr_recent.clear()
        self._rr_mean = None
        self.template.reset()

    def add_peaks(self, peaks: NDArray[np.int64]) -> None:
        """R peaks from the detector, in detector indexing (0 = first sample of the segment)."""
        if peaks.size:
            self._pending.extend((peaks + self.segment_origin).tolist())

    def ready(self, now: float, settled: Callable[[], int], final: bool = False) -> list[Beat]:
        """Beats whose window and next R peak have arrived (all of them if ``final``).

        ``settled()`` is the index before which the detector can report no new peak.
        """
        out: list[Beat] = []
        end = self.samples.end
        pending = self._pending
        counts = self.counts
        while pending:
            peak = pending[0]
            nxt = pending[1] if len(pending) > 1 else None
            if not final:
                if end < peak + self._post or self.quality.known_until <= peak:
                    break
                if nxt is None and settled() <= peak + self._rr_wait:
                    break  # the next peak may still come: wait until it cannot
            pending.popleft()
            if not self.quality.usable(peak):
                counts.suppressed += 1
                continue
            if self._qrs_amplitude(peak) < self.min_qrs_mv:
                counts.low_amplitude += 1
                continue
            out.append(self._make_beat(peak, nxt, now, self._ready_sample(peak, nxt, end if final else None)))
        return out

    def _ready_sample(self, peak: int, nxt: int | None, final_end: int | None) -> int:
        """The sample at which ``peak`` is ready from the samples alone, whatever the chunks they came in: its
        window has arrived, its quality block is judged, and its next R peak is seen (or cannot come within
        ``rr_wait_s``); at a stream's end (``final_end``), no later than the end."""
        q = self.quality
        length = max(1, round(q.config.block_s * q.fs))
        block = q.origin + ((peak - q.origin) // length + 1) * length  # the end of the block judging the peak
        waited = peak + self._rr_wait + 1
        ready = max(peak + self._post, block, waited if nxt is None else min(nxt, waited))
        return ready if final_end is None else max(peak, min(ready, final_end))

    def _qrs_amplitude(self, peak: int) -> float:
        """Peak-to-peak (mV) of the detection lead within 50 ms of the R peak."""
        lo = max(peak - self._qrs_half, self.samples.start, self.segment_origin)
        hi = min(peak + self._qrs_half + 1, self.samples.end)
        if hi <= lo:
            return math.inf
        x = self.samples.read(lo, hi)[:, 0]
        x = x[np.isfinite(x)]
        return float(x.max() - x.min()) if x.size else math.inf

    def _make_beat(self, peak: int, nxt: int | None, now: float, ready_sample: int) -> Beat:
        fs = self.fs
        rr_prev = None if self._last_sent is None else (peak - self._last_sent) / fs
        rr_next = None if nxt is None or nxt - peak > self._rr_wait else (nxt - peak) / fs
        # context from the beats before this one, so a premature beat stands out
        rr_local = sum(self._rr_recent) / len(self._rr_recent) if self._rr_recent else None
        rr_mean = self._rr_mean
        if rr_prev is not None:
            self._rr_recent.append(rr_prev)
            a = 1.0 / 64.0
            self._rr_mean = rr_prev if self._rr_mean is None else (1 - a) * self._rr_mean + a * rr_prev
        self._last_sent = peak
        self.last_peak = peak
        if self.keep_peaks:
            self.peaks.append(peak)
        self.counts.beats += 1
        start = peak - self._pre
        stop = peak + self._post
        # only samples of this segment: a restarted device's signal does not continue the old one
        lo = max(start, self.samples.start, self.segment_origin)
        hi = min(stop, self.samples.end)
        if lo >= hi:  # nothing of the window held (the ingest's buffer rule prevents it)
            window = np.zeros(stop - start, dtype=np.float32)
        else:
            window = self.samples.read(lo, hi)[:, 0]
            if lo > start or hi < stop:  # segment start or end: pad with edge values
                window = np.pad(window, (lo - start, stop - hi), mode="edge")
        if not np.isfinite(window).all():
            window = np.nan_to_num(window, nan=0.0)
        return Beat(
            stream=self.stream,
            sample=peak,
            fs=fs,
            rr_prev=rr_prev,
            rr_next=rr_next,
            rr_local=rr_local,
            rr_mean=rr_mean,
            window=window.astype(np.float32, copy=False),
            window_start=start,
            ready_at=now,
            ready_sample=ready_sample,
            shape=self.template.observe(window, peak),
        )
