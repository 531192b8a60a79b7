"""Waveform strips for drawing: each stream's monitored lead, low-passed and
resampled, in short chunks.

A central station or a bridge draws a bed's ECG from the ``wave/<stream>/``
topic of the alert bus (opt-in, ``ecg-monitor --wave``): by default 125 values
a second in chunks of a quarter second of signal. :class:`WaveDecimator` does
one stream: a linear-phase FIR low-pass (40 Hz, the usual monitor-mode display
band's upper edge, or 0.45 of the output rate if lower; its 20 ms delay is
taken out, so a value lies exactly at its sample) run with its state carried
from chunk to chunk, then linear interpolation at the output instants. What it
emits depends only on the samples, never on how they were chunked. A sample
that is not finite (lost signal) makes its output values ``None``, and the
filter starts afresh after it. :class:`WaveTap` reads each stream's new samples
from its ring buffer and publishes whole chunks; a stream's second lead (kept for
display only) is drawn too while someone looks at it (a central station's bed view).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import signal

__all__ = ["WaveChunk", "WaveDecimator", "WaveTap"]


@dataclass(frozen=True)
class WaveChunk:
    """``values`` (mV, ``None`` where there was no signal) at ``fs``; ``values[0]`` lies at stream sample
    ``sample`` (rounded; exactly at ``position``)."""

    stream: str
    sample: int
    position: float
    fs: float
    source_fs: float
    values: tuple[float | None, ...]


class WaveDecimator:
    """One stream's strip (see the module docstring)."""

    def __init__(self, stream: str, fs: float, out_fs: float = 125.0, chunk_s: float = 0.25) -> None:
        if not (math.isfinite(fs) and fs > 0 and math.isfinite(out_fs) and out_fs > 0 and chunk_s > 0):
            raise ValueError(f"bad rates: fs {fs}, out_fs {out_fs}, chunk_s {chunk_s}")
        self.stream = stream
        self.fs = fs
        self.out_fs = out_fs
        self.step = fs / out_fs  # source samples per output value
        self.chunk = max(1, round(chunk_s * out_fs))  # output values per chunk
        cutoff = min(40.0, 0.45 * out_fs)
        self.delay = round(0.02 * fs) if cutoff < 0.45 * fs else 0  # samples the filter's output lags its input
        self._taps = signal.firwin(2 * self.delay + 1, cutoff, fs=fs) if self.delay else None
        self._zi: NDArray[np.float64] | None = None
        self._origin: float | None = None  # position (stream sample) of output 0 since the (re)start
        self._k = 0  # the next output's number: at position origin + k * step, whatever the chunking
        self._end: int | None = None  # one past the last sample fed
        self._last: float = math.nan  # the last filtered sample (at _end - 1), nan after a lost one
        self._values: list[float | None] = []
        self._first_k = 0  # the number of _values[0]

    @property
    def end(self) -> int | None:
        """One past the last sample fed (None before the first, or after a gap restarted it)."""
        return self._end

    def feed(self, start: int, x: NDArray[np.floating]) -> list[WaveChunk]:
        """Samples ``x`` from stream sample ``start`` on; returns the chunks completed."""
        raw = np.asarray(x, dtype=np.float64).ravel()
        if self._end is not None and start > self._end:  # a gap: what was not received is no signal
            self._restart()
        if self._end is not None and start < self._end:  # already fed: only the new part
            raw = raw[self._end - start :]
            start = self._end
        if raw.size == 0:
            return []
        if self._origin is None:
            self._origin = float(start)
            self._k = self._first_k = 0
        finite = np.isfinite(raw)
        y = self._filter(np.where(finite, raw, 0.0), finite)
        # y[i] is the filtered signal at sample start + i - delay; prev[0] (self._last) is the one before
        base = start - self.delay - 1  # the sample of prev[0]
        prev = np.concatenate(([self._last], y))
        top = start + raw.size - 1 - self.delay  # the last sample an output can be interpolated up to
        last = math.floor((top - self._origin) / self.step) + 1  # one past the last output (checked below)
        ks = np.arange(self._k, max(self._k, last + 1))
        pos = self._origin + ks * self.step
        keep = pos <= top
        ks, pos = ks[keep], pos[keep]
        out: list[WaveChunk] = []
        if ks.size:
            i = np.floor(pos).astype(np.int64) - base
            frac = pos - np.floor(pos)
            a = prev[i]
            b = prev[np.minimum(i + 1, prev.size - 1)]  # unused where frac is 0
            v = np.where(frac == 0.0, a, a + frac * (b - a))
            if not self._values:
                self._first_k = int(ks[0])
            self._values += [None if x != x else x for x in v.tolist()]  # NaN: no signal
            self._k = int(ks[-1]) + 1
            while len(self._values) >= self.chunk:
                out.append(self._emit())
        self._last = float(y[-1])
        self._end = start + raw.size
        return out

    def _filter(self, x: NDArray[np.float64], finite: NDArray[np.bool_]) -> NDArray[np.float64]:
        taps = self._taps
        if taps is None:
            return np.where(finite, x, np.nan)
        y = np.empty_like(x)
        lo = 0
        breaks = np.flatnonzero(~finite)
        for b in [*breaks.tolist(), x.size]:
            if b > lo:
                if self._zi is None:
                    self._zi = signal.lfilter_zi(taps, 1.0) * x[lo]
                y[lo:b], self._zi = signal.lfilter(taps, 1.0, x[lo:b], zi=self._zi)
            if b < x.size:
                y[b] = np.nan
                self._zi = None  # the filter starts afresh after a lost sample
            lo = b + 1
        return y

    def _emit(self) -> WaveChunk:
        assert self._origin is not None
        first = self._origin + self._first_k * self.step
        values = tuple(self._values[: self.chunk])
        chunk = WaveChunk(self.stream, round(first), first, self.out_fs, self.fs, values)
        del self._values[: self.chunk]
        self._first_k += self.chunk
        return chunk

    def _restart(self) -> None:
        self._zi = None
        self._origin = None
        self._end = None
        self._last = math.nan
        self._values = []


class _Ring(Protocol):
    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    def read(self, start: int, stop: int) -> NDArray[np.floating]: ...


class _Lead(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ring(self) -> _Ring: ...


class _Stream(Protocol):
    @property
    def stream(self) -> str: ...

    @property
    def fs(self) -> float: ...

    @property
    def lead_name(self) -> str: ...

    @property
    def ring(self) -> _Ring: ...

    @property
    def display(self) -> _Lead | None: ...


class Publish(Protocol):
    def __call__(self, chunk: WaveChunk, lead: str, *, monitored: bool = True) -> None: ...


class WaveTap:
    """Reads each stream's new samples from its ring buffer and hands whole chunks to ``publish`` (with the
    name of the lead, and ``monitored`` False for a second lead); a stream no longer polled is forgotten.
    ``second(stream)``: whether the stream's second lead is wanted now (None: never)."""

    def __init__(
        self,
        publish: Publish,
        out_fs: float = 125.0,
        chunk_s: float = 0.25,
        every_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        second: Callable[[str], bool] | None = None,
    ) -> None:
        self.publish = publish
        self.second = second
        self._seconds: dict[str, WaveDecimator] = {}
        self.out_fs = out_fs
        self.chunk_s = chunk_s
        self.every_s = every_s  # polls closer together than this do nothing (the cost is per call, per stream)
        self.clock = clock
        self._last = -math.inf
        self._streams: dict[str, WaveDecimator] = {}

    def poll(self, streams: Iterable[_Stream], *, force: bool = False) -> int:
        """Publish the chunks completed since the last poll; returns how many. A poll within ``every_s`` of
        the last one does nothing unless ``force``d: what is published does not depend on how often."""
        now = self.clock()
        if not force and now - self._last < self.every_s:
            return 0
        self._last = now
        n = 0
        seen = set()
        wanted = set()
        for proc in streams:
            seen.add(proc.stream)
            for chunk in self._feed(self._streams, proc, proc.ring):
                self.publish(chunk, proc.lead_name)
                n += 1
            second = proc.display
            if second is not None and self.second is not None and self.second(proc.stream):
                wanted.add(proc.stream)
                for chunk in self._feed(self._seconds, proc, second.ring):
                    self.publish(chunk, second.name, monitored=False)
                    n += 1
        for gone in set(self._streams) - seen:
            del self._streams[gone]
        for gone in set(self._seconds) - wanted:  # drawn afresh from what the ring holds when wanted again
            del self._seconds[gone]
        return n

    def _feed(self, decimators: dict[str, WaveDecimator], proc: _Stream, ring: _Ring) -> list[WaveChunk]:
        dec = decimators.get(proc.stream)
        if dec is None or dec.fs != proc.fs:
            dec = decimators[proc.stream] = WaveDecimator(proc.stream, proc.fs, self.out_fs, self.chunk_s)
        begin = ring.start if dec.end is None else max(dec.end, ring.start)
        if ring.end <= begin:
            return []
        return dec.feed(begin, ring.read(begin, ring.end)[:, 0])
