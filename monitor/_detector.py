"""Streaming R-peak detector.

A Pan-Tompkins style detector (band-pass, derivative, squaring, moving-window
integration, adaptive thresholds with T-wave rejection and search-back) built so
that its output does not depend on how the signal is chunked:

* every filter is an IIR/FIR whose state is carried across calls
  (``scipy.signal.sosfilt``/``lfilter`` with ``zi``), so the feature signal is
  bit-identical whatever the chunking;
* a sample of the integrated signal becomes a candidate peak only once the
  whole neighbourhood that decides it has arrived (a fixed look-ahead);
* candidates are then decided strictly in sample order by a small state machine,
  and search-back fires at a sample position (not at a chunk boundary).

The heavy per-sample work is vectorised (SciPy filters, a running maximum); only
the few candidates per second go through Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.ndimage import maximum_filter1d

from monitor._errors import ConfigError

try:  # SciPy's own compiled kernel behind sosfilt, without the per-call checks
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - other SciPy layouts use the public API
    _sosfilt_kernel = None

__all__ = ["DetectorConfig", "StreamingDetector"]


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of :class:`StreamingDetector`; times in seconds, amplitudes in mV."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    integration_s: float = 0.150
    refractory_s: float = 0.200
    twave_s: float = 0.360
    searchback_factor: float = 1.66
    learning_s: float = 2.0
    min_qrs_mv: float = 0.03

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ConfigError(f"band_hz must be 0 < low < high, got {self.band_hz!r}")
        for name in ("integration_s", "refractory_s", "twave_s", "learning_s", "min_qrs_mv"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if not self.searchback_factor > 1:
            raise ConfigError(f"searchback_factor must be > 1, got {self.searchback_factor!r}")


class _Features:
    """Band-pass, five-point derivative and moving-window integral, state carried.

    The squared derivative is quantised to integers (1e-6 (mV/s)^2) so that the
    running sum of the integrator is exact: the integrated signal is then
    bit-identical however the input is chunked.
    """

    def __init__(self, sos: NDArray[np.float64], fs: float, w: int) -> None:
        self.sos = sos
        self.scale = fs / 8.0
        self.w = w
        self.zi: NDArray[np.float64] | None = None
        self.bp_hist = np.zeros(4)  # last 4 band-passed samples
        self.q_hist = np.zeros(w - 1, dtype=np.int64)  # last w-1 quantised squares

    def run(
        self, x: NDArray[np.float64], initial: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        if self.zi is None:  # start in steady state at the first sample's level
            self.zi = signal.sosfilt_zi(self.sos) * initial
        if _sosfilt_kernel is None:
            bp, self.zi = signal.sosfilt(self.sos, x, zi=self.zi)
        else:
            xx = np.array(x, dtype=np.float64, order="C")[None, :]
            z = np.array(self.zi, dtype=np.float64, order="C")[None, :, :]
            _sosfilt_kernel(self.sos, xx, z)
            bp, self.zi = xx[0], z[0]
        ext = np.concatenate((self.bp_hist, bp))
        self.bp_hist = ext[-4:].copy()
        d = (ext[4:] + 2.0 * ext[3:-1] - 2.0 * ext[1:-3] - ext[:-4]) * self.scale
        q = np.rint(np.minimum(d * d, 1e12) * 1e6).astype(np.int64)
        w = self.w
        qext = np.concatenate((self.q_hist, q))
        if w > 1:
            self.q_hist = qext[-(w - 1) :].copy()
        cs = np.cumsum(qext)
        sums = cs[w - 1 :].copy()
        sums[1:] -= cs[: cs.size - w]
        return bp, d, sums.astype(np.float64) * (1e-6 / w)


class StreamingDetector:
    """Find R peaks in one ECG lead, fed in chunks of any size.

    ``process(chunk)`` returns the sample indices (in the stream's own indexing,
    starting at 0 for the first sample ever fed) of the R peaks decided so far.
    Input is in millivolts; NaN samples are held at the last finite value and
    cannot produce a beat on their own.

    A beat is reported at most :attr:`delay_samples` samples after its R peak,
    except beats recovered by search-back, which are reported once
    ``searchback_factor`` times the average RR has passed without a beat.
    """

    def __init__(self, fs: float, config: DetectorConfig | None = None) -> None:
        if not (math.isfinite(fs) and fs > 0):
            raise ConfigError(f"fs must be a positive sampling rate in Hz, got {fs!r}")
        cfg = config or DetectorConfig()
        lo, hi = cfg.band_hz
        hi = min(hi, 0.45 * fs)
        if lo >= hi:
            raise ConfigError(f"fs={fs} Hz is too low for the band {cfg.band_hz} Hz")
        self.fs = float(fs)
        self.config = cfg
        self._sos = signal.butter(2, (lo, hi), btype="bandpass", fs=fs, output="sos")
        self._w = max(1, round(cfg.integration_s * fs))
        self._r = max(1, round(cfg.refractory_s * fs))
        self._twave = round(cfg.twave_s * fs)
        self._learn = max(1, round(cfg.learning_s * fs))
        # Group delay of the band-pass near the QRS's dominant frequency.
        b, a = signal.sos2tf(self._sos)
        _, gd = signal.group_delay((b, a), w=[math.sqrt(lo * hi)], fs=fs)
        self._gd = round(float(gd[0]))
        # Amplitude floor: the integrated response to a QRS of min_qrs_mv.
        self._floor = self._unit_response() * cfg.min_qrs_mv**2

        self._feat = _Features(self._sos, self.fs, self._w)
        self._last_finite = 0.0
        self._n = 0  # samples consumed
        self._next_i = 0  # next index of the integrated signal to examine
        self._buf0 = 0  # absolute index of _bp[0] (== _d[0] == _m[0])
        self._bp = np.empty(0)
        self._d = np.empty(0)
        self._m = np.empty(0)

        # Decision state.
        self._learning = True
        self._learn_end = self._learn
        self._learn_cands: list[tuple[int, float, float, int]] = []
        self._spk = 0.0
        self._npk = 0.0
        self._last_qrs = -(10**12)  # candidate index of the last QRS
        self._last_slope = 0.0
        self._rr: list[int] = []
        self._noise_cands: list[tuple[int, float, float, int]] = []
        self._sb_deadline: int | None = None

    # ------------------------------------------------------------------ API
    @property
    def delay_samples(self) -> int:
        """Largest gap between an R peak and its report, outside search-back."""
        return self._r + self._w + self._gd + 3

    @property
    def samples_seen(self) -> int:
        return self._n

    def process(self, chunk: NDArray[np.floating]) -> NDArray[np.int64]:
        """Feed the next samples; return R-peak indices decided by them."""
        x = np.asarray(chunk, dtype=np.float64).ravel()
        if x.size == 0:
            return np.empty(0, dtype=np.int64)
        x = self._hold_nan(x)
        bp, d, m = self._feat.run(x, initial=float(x[0]))
        self._n += x.size
        self._bp = np.concatenate((self._bp, bp))
        self._d = np.concatenate((self._d, d))
        self._m = np.concatenate((self._m, m))
        return self._examine(self._n - self._r)

    def flush(self) -> NDArray[np.int64]:
        """End of stream: decide what is left, as if the last value continued."""
        pad = np.full(self._r + self._w + 1, self._last_finite)
        peaks = [self.process(pad)]
        peaks.append(self._finish())
        return np.concatenate(peaks)

    # ------------------------------------------------------------ internals
    def _unit_response(self) -> float:
        """Peak of the integrated signal for a 1 mV, ~28 ms wide QRS at this rate."""
        t = np.arange(round(2 * self.fs)) / self.fs
        qrs = np.exp(-0.5 * ((t - 1.0) / 0.012) ** 2)
        _, _, m = _Features(self._sos, self.fs, self._w).run(qrs, initial=0.0)
        return float(m.max())

    def _hold_nan(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        bad = ~np.isfinite(x)
        if bad.any():
            x = x.copy()
            idx = np.where(bad, 0, np.arange(x.size))
            np.maximum.accumulate(idx, out=idx)
            first_good = ~bad[0]
            x = x[idx]
            if not first_good:
                # Leading bad run: hold the value from the previous chunk.
                lead = np.argmax(~bad) if (~bad).any() else x.size
                x[:lead] = self._last_finite
        self._last_finite = float(x[-1])
        return x

    def _examine(self, stop: int) -> NDArray[np.int64]:
        """Decide candidates at integrated-signal indices [_next_i, stop)."""
        out: list[int] = []
        start = self._next_i
        if stop > start:
            r = self._r
            lo = start - r  # window left edge, may precede the stream
            seg_lo = max(lo, self._buf0)
            seg = self._m[seg_lo - self._buf0 : stop + r - self._buf0]
            if seg_lo > lo:
                seg = np.concatenate((np.full(seg_lo - lo, -np.inf), seg))
            mx = maximum_filter1d(seg, size=2 * r + 1, mode="nearest")
            core = seg[r : r + (stop - start)]
            prev = seg[r - 1 : r - 1 + (stop - start)]
            is_cand = (core == mx[r : r + (stop - start)]) & (core > prev) & (core >= self._floor)
            for off in np.flatnonzero(is_cand):
                c = start + int(off)
                out.extend(self._on_candidate(c))
            self._next_i = stop
            out.extend(self._check_searchback(stop - 1))
            self._trim()
        return np.asarray(out, dtype=np.int64)

    def _candidate(self, c: int) -> tuple[int, float, float, int]:
        b0 = self._buf0
        lo = max(c - self._w - 2, b0)
        p = float(self._m[c - b0])
        slope = float(np.max(np.abs(self._d[lo - b0 : c + 1 - b0])))
        bp = self._bp[lo - b0 : c + 1 - b0]
        r_idx = lo + int(np.argmax(np.abs(bp))) - self._gd
        return c, p, slope, max(r_idx, 0)

    def _trim(self) -> None:
        keep_from = self._next_i - self._r - self._w - 4
        cut = keep_from - self._buf0
        if cut > 4096:
            self._bp = self._bp[cut:]
            self._d = self._d[cut:]
            self._m = self._m[cut:]
            self._buf0 = keep_from

    def _thr1(self) -> float:
        return self._npk + 0.25 * (self._spk - self._npk)

    def _rr_mean(self) -> float:
        if not self._rr:
            return self.fs  # 60 bpm until two beats are known
        return float(np.mean(self._rr[-8:]))

    def _on_candidate(self, c: int) -> list[int]:
        cand = self._candidate(c)
        out: list[int] = []
        while self._learning and c >= self._learn_end:
            out.extend(self._end_learning())
        if self._learning:
            self._learn_cands.append(cand)
            return out
        return out + self._decide(cand)

    def _end_learning(self) -> list[int]:
        cands = self._learn_cands
        self._learn_cands = []
        if not cands:
            self._learn_end += self._learn
            return []
        self._learning = False
        peaks = [p for _, p, _, _ in cands]
        self._spk = 0.5 * max(peaks)
        self._npk = 0.0
        out: list[int] = []
        for cand in cands:
            out.extend(self._decide(cand))
        return out

    def _check_searchback(self, horizon: int) -> list[int]:
        out: list[int] = []
        while self._learning and horizon >= self._learn_end - 1:
            out.extend(self._end_learning())
        if self._learning:
            return out
        while self._sb_deadline is not None and self._sb_deadline <= horizon:
            out.extend(self._searchback())
        return out

    def _decide(self, cand: tuple[int, float, float, int]) -> list[int]:
        c, p, slope, _ = cand
        out: list[int] = []
        while self._sb_deadline is not None and self._sb_deadline < c:
            out.extend(self._searchback())
        if c - self._last_qrs < self._r:
            return out
        if p > self._thr1():
            if c - self._last_qrs < self._twave and slope < 0.5 * self._last_slope:
                self._noise(cand)
            else:
                self._spk = 0.125 * p + 0.875 * self._spk
                out.append(self._qrs(cand))
        else:
            self._noise(cand)
        return out

    def _noise(self, cand: tuple[int, float, float, int]) -> None:
        self._npk = 0.125 * cand[1] + 0.875 * self._npk
        self._noise_cands.append(cand)

    def _qrs(self, cand: tuple[int, float, float, int]) -> int:
        c, _, slope, r_idx = cand
        if self._last_qrs >= 0:
            self._rr.append(c - self._last_qrs)
            if len(self._rr) > 8:
                del self._rr[0]
        self._last_qrs = c
        self._last_slope = slope
        self._noise_cands = []
        self._sb_deadline = c + round(self.config.searchback_factor * self._rr_mean())
        return r_idx

    def _searchback(self) -> list[int]:
        deadline = self._sb_deadline
        assert deadline is not None
        thr2 = 0.5 * self._thr1()
        best = None
        for cand in self._noise_cands:
            if cand[0] <= deadline and cand[1] > thr2 and (best is None or cand[1] > best[1]):
                best = cand
        if best is None:
            # Nothing there: lower the bar and look again one RR later.
            self._spk *= 0.5
            self._npk *= 0.5
            self._sb_deadline = deadline + round(self._rr_mean())
            return []
        self._spk = 0.25 * best[1] + 0.75 * self._spk
        self._noise_cands = [cand for cand in self._noise_cands if cand[0] > best[0]]
        kept = self._noise_cands
        r_idx = self._qrs(best)
        self._noise_cands = [cand for cand in kept if cand[0] - best[0] >= self._r]
        return [r_idx]

    def _finish(self) -> NDArray[np.int64]:
        out: list[int] = []
        if self._learning and self._learn_cands:
            out.extend(self._end_learning())
        return np.asarray(out, dtype=np.int64)
