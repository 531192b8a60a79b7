"""Streaming R-peak detection, one stream or many at once.

A Pan-Tompkins style detector (band-pass, derivative, squaring, moving-window
integration, adaptive thresholds with T-wave rejection and search-back) built so
that its output does not depend on how the signal is chunked:

* every filter carries its state across calls, and the integrator sums
  integers, so the feature signal is bit-identical whatever the chunking;
* a sample of the integrated signal becomes a candidate peak only once the
  whole neighbourhood that decides it has arrived (a fixed look-ahead);
* candidates are decided strictly in sample order by a small per-stream state
  machine, and search-back fires at a sample position, not at a chunk boundary.

:class:`DetectorBank` runs the per-sample stages for many streams of one
sampling rate as 2-D array operations (one filter call for all streams with a
chunk of the same length), so the cost per stream falls as streams are added;
only the few candidate peaks per second go through Python.
:class:`StreamingDetector` is a bank of one stream.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.ndimage import maximum_filter1d

from monitor.detect._filters import sosfilt_rows
from monitor.errors import ConfigError, require_positive

__all__ = ["DetectorBank", "DetectorConfig", "StreamingDetector"]

K = TypeVar("K", bound=Hashable)

_Q = 1e6  # quantisation of the squared derivative, units per (mV/s)^2
_Q_MAX = 1e12  # clip of the squared derivative, (mV/s)^2 (keeps int64 sums exact)
_PIECE = 65536  # longer input is processed in pieces of this many samples per stream
_NEVER = 2**62  # a horizon no stream reaches


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the detector; times in seconds, amplitudes in mV."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    integration_s: float = 0.150
    refractory_s: float = 0.200
    twave_s: float = 0.360
    searchback_factor: float = 1.66
    learning_s: float = 2.0
    min_qrs_mv: float = 0.03
    threshold_fraction: float = 0.2  # THR1 = NPK + fraction * (SPK - NPK)
    searchback_threshold: float = 0.4  # search-back accepts peaks above this * THR1
    twave_slope_ratio: float = 0.4  # a peak within twave_s slower than this * last QRS slope is a T wave

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ConfigError(f"band_hz must be 0 < low < high, got {self.band_hz!r}")
        require_positive(self, "integration_s", "refractory_s", "twave_s", "learning_s", "min_qrs_mv")
        for name in ("threshold_fraction", "searchback_threshold", "twave_slope_ratio"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value < 1):
                raise ConfigError(f"{name} must be in (0, 1), got {value!r}")
        if not self.searchback_factor > 1:
            raise ConfigError(f"searchback_factor must be > 1, got {self.searchback_factor!r}")


class _Design:
    """Everything that depends only on the sampling rate and the settings."""

    def __init__(self, fs: float, cfg: DetectorConfig) -> None:
        if not (math.isfinite(fs) and fs > 0):
            raise ConfigError(f"fs must be a positive sampling rate in Hz, got {fs!r}")
        lo, hi = cfg.band_hz
        hi = min(hi, 0.45 * fs)
        if lo >= hi:
            raise ConfigError(f"fs={fs} Hz is too low for the band {cfg.band_hz} Hz")
        self.fs = float(fs)
        self.cfg = cfg
        self.sos = np.ascontiguousarray(signal.butter(2, (lo, hi), btype="bandpass", fs=fs, output="sos"))
        self.zi_unit = signal.sosfilt_zi(self.sos)
        self.scale = fs / 8.0
        self.w = max(1, round(cfg.integration_s * fs))
        self.r = max(1, round(cfg.refractory_s * fs))
        self.twave = round(cfg.twave_s * fs)
        self.learn = max(1, round(cfg.learning_s * fs))
        self.searchback = cfg.searchback_factor
        # history kept before each new chunk: +-r for the running maximum, and
        # w + 2 before a candidate for its slope and R-peak search
        self.tail = 2 * self.r + self.w + 2
        b, a = signal.sos2tf(self.sos)
        _, gd = signal.group_delay((b, a), w=[math.sqrt(lo * hi)], fs=fs)
        self.gd = round(float(gd[0]))  # band-pass delay near the QRS's frequencies
        self.back = np.arange(-(self.w + 2), 1)
        self.floor = self._unit_response() * cfg.min_qrs_mv**2

    def _unit_response(self) -> float:
        """Peak of the integrated signal for a 1 mV, ~28 ms wide QRS at this rate."""
        t = np.arange(round(2 * self.fs)) / self.fs
        qrs = np.exp(-0.5 * ((t - 1.0) / 0.012) ** 2)[None, :]
        zi = np.zeros((1, self.sos.shape[0], 2))
        bp = sosfilt_rows(self.sos, qrs, zi)
        _, m = _features(bp, np.zeros((1, 4)), np.zeros((1, self.w - 1), dtype=np.int64), self.scale, self.w)
        return float(m.max())


def _features(
    bp: NDArray[np.float64], bp_hist: NDArray[np.float64], q_hist: NDArray[np.int64], scale: float, w: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Five-point derivative and its squared moving-window integral, per row.

    ``bp_hist`` (S, 4) and ``q_hist`` (S, w-1) hold each row's history and are
    updated in place. The square is quantised to integers so that the running
    sum is exact: the integral is the same however the signal is chunked.
    """
    rows, n = bp.shape
    ext = np.empty((rows, n + 4))
    ext[:, :4] = bp_hist
    ext[:, 4:] = bp
    bp_hist[...] = ext[:, -4:]
    # d = (x[i] + 2 x[i-1] - 2 x[i-3] - x[i-4]) * scale, evaluated in that order, in place
    d = np.multiply(ext[:, 3:-1], 2.0)
    d += ext[:, 4:]
    t = np.multiply(ext[:, 1:-3], 2.0)
    d -= t
    d -= ext[:, :-4]
    d *= scale
    q = np.multiply(d, d, out=t)
    np.minimum(q, _Q_MAX, out=q)
    q *= _Q
    np.rint(q, out=q)
    qext = np.empty((rows, n + w - 1), dtype=np.int64)
    qext[:, : w - 1] = q_hist
    qext[:, w - 1 :] = q  # the integers q holds, as astype(np.int64) gives them
    if w > 1:
        q_hist[...] = qext[:, -(w - 1) :]
    cs = np.cumsum(qext, axis=1)
    sums = np.empty((rows, n), dtype=np.int64)
    sums[:, 0] = cs[:, w - 1]
    np.subtract(cs[:, w:], cs[:, : cs.shape[1] - w], out=sums[:, 1:])
    return d, np.multiply(sums, 1.0 / (_Q * w))


_Cand = tuple[int, float, float, int]  # (index in the integrated signal, height, slope, R-peak sample)


class _Decider:
    """Per-stream threshold logic over candidate peaks, fed in sample order."""

    def __init__(self, design: _Design) -> None:
        self.k = design
        self.learning = True
        self.learn_end = design.learn
        self.learn_cands: list[_Cand] = []
        self.spk = 0.0
        self.npk = 0.0
        self.last_qrs = -(10**15)
        self.last_slope = 0.0
        self.rr: deque[int] = deque(maxlen=8)
        self.noise_cands: list[_Cand] = []
        self.sb_deadline: int | None = None

    def thr1(self) -> float:
        return self.npk + self.k.cfg.threshold_fraction * (self.spk - self.npk)

    def rr_mean(self) -> float:
        return sum(self.rr) / len(self.rr) if self.rr else self.k.fs  # 60 bpm until known

    def on_candidate(self, cand: _Cand, out: list[int]) -> None:
        while self.learning and cand[0] >= self.learn_end:
            self.end_learning(out)
        if self.learning:
            self.learn_cands.append(cand)
        else:
            self.decide(cand, out)

    def on_horizon(self, horizon: int, out: list[int]) -> None:
        """Every candidate up to ``horizon`` has been seen."""
        while self.learning and horizon >= self.learn_end - 1:
            self.end_learning(out)
        while not self.learning and self.sb_deadline is not None and self.sb_deadline <= horizon:
            self.searchback(out)

    def wake(self) -> int:
        """The smallest horizon at which :meth:`on_horizon` has something to do."""
        if self.learning:
            return self.learn_end - 1
        return _NEVER if self.sb_deadline is None else self.sb_deadline

    def finish(self, out: list[int]) -> None:
        if self.learning and self.learn_cands:
            self.end_learning(out)

    def end_learning(self, out: list[int]) -> None:
        cands = self.learn_cands
        self.learn_cands = []
        if not cands:
            self.learn_end += self.k.learn
            return
        self.learning = False
        self.spk = 0.5 * max(c[1] for c in cands)
        self.npk = 0.0
        for cand in cands:
            self.decide(cand, out)

    def decide(self, cand: _Cand, out: list[int]) -> None:
        c, p, slope, _ = cand
        while self.sb_deadline is not None and self.sb_deadline < c:
            self.searchback(out)
        if c - self.last_qrs < self.k.r:
            return
        if p > self.thr1():
            cfg = self.k.cfg
            if c - self.last_qrs < self.k.twave and slope < cfg.twave_slope_ratio * self.last_slope:
                self.noise(cand)  # a T wave: too soon and too slow
            else:
                self.spk = 0.125 * p + 0.875 * self.spk
                out.append(self.qrs(cand))
        else:
            self.noise(cand)

    def noise(self, cand: _Cand) -> None:
        self.npk = 0.125 * cand[1] + 0.875 * self.npk
        self.noise_cands.append(cand)

    def qrs(self, cand: _Cand) -> int:
        c, _, slope, r_idx = cand
        if self.last_qrs >= 0:
            self.rr.append(c - self.last_qrs)
        self.last_qrs = c
        self.last_slope = slope
        self.noise_cands = []
        self.sb_deadline = c + round(self.k.searchback * self.rr_mean())
        return r_idx

    def searchback(self, out: list[int]) -> None:
        deadline = self.sb_deadline
        assert deadline is not None
        thr2 = self.k.cfg.searchback_threshold * self.thr1()
        best = None
        for cand in self.noise_cands:
            if cand[0] <= deadline and cand[1] > thr2 and (best is None or cand[1] > best[1]):
                best = cand
        if best is None:
            # Nothing there: lower the bar and look again one RR later; the
            # peaks already passed over have had their chance.
            self.spk *= 0.5
            self.npk *= 0.5
            self.noise_cands = [cand for cand in self.noise_cands if cand[0] > deadline]
            self.sb_deadline = deadline + round(self.rr_mean())
            return
        self.spk = 0.25 * best[1] + 0.75 * self.spk
        later = [cand for cand in self.noise_cands if cand[0] - best[0] >= self.k.r]
        out.append(self.qrs(best))
        self.noise_cands = later


class DetectorBank(Generic[K]):
    """Find R peaks in many streams of one sampling rate, fed in chunks of any size.

    ``process({key: chunk, ...})`` takes the next samples (mV, one lead) of any
    subset of streams and returns, per stream, the sample indices (counted from
    the stream's first sample) of the R peaks decided so far. Streams whose
    chunks have the same length are filtered together as one 2-D array. NaN and
    infinite samples are held at the last finite value and cannot make a beat on
    their own.

    A beat is reported at most :attr:`delay_samples` after its R peak, except
    beats recovered by search-back, reported once ``searchback_factor`` times the
    mean RR has passed without a beat.
    """

    def __init__(self, fs: float, config: DetectorConfig | None = None, capacity: int = 16) -> None:
        self.config = config or DetectorConfig()
        self._k = _Design(fs, self.config)
        self.fs = self._k.fs
        k = self._k
        cap = max(1, capacity)
        self._rows: dict[K, int] = {}
        self.failed: dict[K, Exception] = {}  # streams whose decision logic raised
        self._free: list[int] = []
        self._deciders: list[_Decider | None] = []
        self._n = np.zeros(cap, dtype=np.int64)
        self._wake = np.full(cap, _NEVER, dtype=np.int64)  # each row's Decider.wake()
        self._last = np.zeros(cap)
        self._zi = np.zeros((cap, k.sos.shape[0], 2))
        self._bp_hist = np.zeros((cap, 4))
        self._q_hist = np.zeros((cap, k.w - 1), dtype=np.int64)
        self._bp = np.zeros((cap, k.tail))
        self._d = np.zeros((cap, k.tail))
        self._m = np.full((cap, k.tail), -np.inf)

    # ------------------------------------------------------------------ API
    @property
    def delay_samples(self) -> int:
        """Largest gap between an R peak and its report, outside search-back."""
        k = self._k
        return k.r + k.w + k.gd + 3

    def __contains__(self, key: K) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def samples_seen(self, key: K) -> int:
        return int(self._n[self._rows[key]])

    def settled(self, key: K) -> int:
        """Sample index before which this stream can get no new R peak.

        Bounded by the next candidate still to be examined and, while a
        search-back may still pick one, by the peaks it could pick.
        """
        row = self._rows[key]
        decider = self._deciders[row]
        k = self._k
        bound = int(self._n[row]) - k.r - (k.w + 2) - k.gd
        if decider is not None:
            waiting = decider.learn_cands if decider.learning else decider.noise_cands
            if waiting:
                bound = min(bound, min(c[3] for c in waiting))
        return bound

    def add(self, key: K) -> None:
        """Start a new stream (its first sample will be index 0)."""
        if key in self._rows:
            raise ConfigError(f"stream {key!r} is already in the detector bank")
        if self._free:
            row = self._free.pop()
        else:
            row = len(self._deciders)
            if row >= self._n.shape[0]:
                self._grow()
            self._deciders.append(None)
        self._rows[key] = row
        self._deciders[row] = decider = _Decider(self._k)
        self._wake[row] = decider.wake()
        self._n[row] = 0
        self._last[row] = 0.0
        self._bp_hist[row] = 0.0
        self._q_hist[row] = 0
        self._bp[row] = 0.0
        self._d[row] = 0.0
        self._m[row] = -np.inf

    def remove(self, key: K) -> None:
        row = self._rows.pop(key)
        self._deciders[row] = None
        self._wake[row] = _NEVER
        self._free.append(row)

    def process(self, chunks: Mapping[K, NDArray[np.floating]]) -> dict[K, NDArray[np.int64]]:
        """Feed the next samples of some streams; return their newly decided R peaks."""
        groups: dict[int, list[tuple[K, NDArray[np.float64]]]] = {}
        for key, chunk in chunks.items():
            if key not in self._rows:
                raise KeyError(f"stream {key!r} was never added to the detector bank")
            x = np.asarray(chunk, dtype=np.float64).ravel()
            if x.size:
                groups.setdefault(x.size, []).append((key, x))
        out: dict[K, NDArray[np.int64]] = {}
        for size, members in groups.items():
            if size <= _PIECE:
                out.update(self._process_group(members))
                continue
            # long input in pieces that stay in the CPU cache (the result does not depend on chunking)
            found: dict[K, list[NDArray[np.int64]]] = {}
            for pos in range(0, size, _PIECE):
                piece = [(key, x[pos : pos + _PIECE]) for key, x in members if key in self._rows]
                for key, peaks in self._process_group(piece).items():
                    found.setdefault(key, []).append(peaks)
            out.update({key: np.concatenate(parts) for key, parts in found.items() if key not in self.failed})
        return out

    def flush(self, key: K) -> NDArray[np.int64]:
        """End of a stream: decide what is left as if its last value continued."""
        row = self._rows[key]
        k = self._k
        pad = np.full(k.r + k.w + 1, self._last[row])
        peaks = self._process_group([(key, pad)]).get(key, np.empty(0, dtype=np.int64))
        decider = self._deciders[row]
        if decider is None:  # failed while flushing
            return peaks
        rest: list[int] = []
        decider.finish(rest)
        self._wake[row] = decider.wake()
        return np.concatenate((peaks, np.asarray(rest, dtype=np.int64)))

    # ------------------------------------------------------------ internals
    def _grow(self) -> None:
        cap = 2 * self._n.shape[0]
        for name in ("_n", "_wake", "_last", "_zi", "_bp_hist", "_q_hist", "_bp", "_d", "_m"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def _process_group(self, members: list[tuple[K, NDArray[np.float64]]]) -> dict[K, NDArray[np.int64]]:
        k = self._k
        keys = [m[0] for m in members]
        rows = np.fromiter((self._rows[key] for key in keys), dtype=np.intp, count=len(keys))
        # consecutive rows (the usual case: every stream with the same chunk length) are read and
        # updated in place through a slice; other sets of rows are gathered and written back
        sel: slice | NDArray[np.intp] = rows
        if rows[-1] - rows[0] == rows.size - 1 and (rows.size < 3 or bool((np.diff(rows) == 1).all())):
            sel = slice(int(rows[0]), int(rows[-1]) + 1)
        x = np.stack([m[1] for m in members]) if len(members) > 1 else np.asarray(members[0][1])[None, :]
        n = x.shape[1]
        x = self._hold(x, sel)
        fresh = self._n[sel] == 0
        zi = self._zi[sel]
        if fresh.any():  # start each new stream in steady state at its first sample
            zi[fresh] = k.zi_unit[None, :, :] * x[fresh, 0][:, None, None]
        bp = sosfilt_rows(k.sos, x, zi)
        bp_hist = self._bp_hist[sel]
        q_hist = self._q_hist[sel]
        d, m = _features(bp, bp_hist, q_hist, k.scale, k.w)
        big_bp = np.concatenate((self._bp[sel], bp), axis=1)
        big_d = np.concatenate((self._d[sel], d), axis=1)
        big_m = np.concatenate((self._m[sel], m), axis=1)
        if not isinstance(sel, slice):  # gathered copies: write them back
            self._zi[sel] = zi
            self._bp_hist[sel] = bp_hist
            self._q_hist[sel] = q_hist
        self._bp[sel] = big_bp[:, -k.tail :]
        self._d[sel] = big_d[:, -k.tail :]
        self._m[sel] = big_m[:, -k.tail :]
        self._n[sel] += n
        total = self._n[sel].copy()

        # Candidates: indices whose integrated value is the maximum of +-r around
        # them (first of a plateau) and above the amplitude floor. Column j of the
        # big arrays is absolute index total - n - tail + j; the indices decided
        # now are total - n - r .. total - r - 1, i.e. columns tail - r .. + n.
        r = k.r
        lo_col = k.tail - r
        mx = maximum_filter1d(big_m[:, lo_col - r :], size=2 * r + 1, axis=1, mode="nearest")[:, r : r + n]
        core = big_m[:, lo_col : lo_col + n]
        prev = big_m[:, lo_col - 1 : lo_col - 1 + n]
        is_cand = (core == mx) & (core > prev) & (core >= k.floor)
        ri, ci = np.nonzero(is_cand)
        out_lists: list[list[int]] = [[] for _ in keys]
        if ri.size:
            cols = lo_col + ci
            base = (total - n - k.tail)[ri]
            heights = big_m[ri, cols]
            win = cols[:, None] + k.back[None, :]
            slopes = np.abs(big_d[ri[:, None], win]).max(axis=1)
            rpk = np.abs(big_bp[ri[:, None], win]).argmax(axis=1)
            c_abs = base + cols
            r_abs = np.maximum(c_abs + k.back[0] + rpk - k.gd, 0)
            for g, c, p, s, rr in zip(
                ri.tolist(), c_abs.tolist(), heights.tolist(), slopes.tolist(), r_abs.tolist(), strict=True
            ):
                decider = self._deciders[rows[g]]
                if decider is None:
                    continue
                try:
                    decider.on_candidate((c, p, s, rr), out_lists[g])
                except Exception as exc:  # one stream's failure must not stop the others
                    self._fail(keys[g], exc)
            for g in set(ri.tolist()):
                decider = self._deciders[rows[g]]
                if decider is not None:
                    self._wake[rows[g]] = decider.wake()
        # the horizon moved: only streams whose learning or search-back falls due have work
        horizons = total - r - 1
        for g in np.flatnonzero(horizons >= self._wake[rows]).tolist():
            row = int(rows[g])
            decider = self._deciders[row]
            if decider is None:
                continue
            try:
                decider.on_horizon(int(horizons[g]), out_lists[g])
                self._wake[row] = decider.wake()
            except Exception as exc:
                self._fail(keys[g], exc)
        return {
            key: np.asarray(lst, dtype=np.int64) if lst else np.empty(0, dtype=np.int64)
            for key, lst in zip(keys, out_lists, strict=True)
            if key not in self.failed
        }

    def _fail(self, key: K, exc: Exception) -> None:
        """Take a stream out of the bank; its owner finds the error in ``failed``."""
        self.failed[key] = exc
        self.remove(key)

    def _hold(self, x: NDArray[np.float64], rows: slice | NDArray[np.intp]) -> NDArray[np.float64]:
        """Replace non-finite samples by the last finite one of their row."""
        bad = ~np.isfinite(x)
        if bad.any():
            ext = np.concatenate((self._last[rows][:, None], x), axis=1)
            bad_ext = np.concatenate((np.zeros((x.shape[0], 1), dtype=bool), bad), axis=1)
            idx = np.where(bad_ext, 0, np.arange(ext.shape[1])[None, :])
            np.maximum.accumulate(idx, axis=1, out=idx)
            x = np.take_along_axis(ext, idx, axis=1)[:, 1:]
        self._last[rows] = x[:, -1]
        return x


class StreamingDetector:
    """Find R peaks in one ECG lead fed in chunks of any size (a bank of one stream).

    ``process(chunk)`` returns the sample indices (counting from 0 at the first
    sample ever fed) of the R peaks decided so far; ``flush()`` at the end of the
    stream returns the rest. Input is in mV.
    """

    def __init__(self, fs: float, config: DetectorConfig | None = None) -> None:
        self._bank: DetectorBank[int] = DetectorBank(fs, config, capacity=1)
        self._bank.add(0)
        self.fs = self._bank.fs
        self.config = self._bank.config

    @property
    def delay_samples(self) -> int:
        return self._bank.delay_samples

    @property
    def samples_seen(self) -> int:
        return self._bank.samples_seen(0)

    def process(self, chunk: NDArray[np.floating]) -> NDArray[np.int64]:
        return self._bank.process({0: chunk}).get(0, np.empty(0, dtype=np.int64))

    def flush(self) -> NDArray[np.int64]:
        return self._bank.flush(0)
