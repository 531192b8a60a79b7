"""Per-stream signal quality: clean, noisy or unusable, and technical alarms.

The signal is judged in fixed blocks (default 1 s, on the stream's own sample
indices, so the result does not depend on chunking), each from a window of the
last few seconds:

* ``signal lost``: at least half of the block's samples are missing (NaN,
  ``invalid`` values, gaps in the stream);
* ``leads off``: a flat line (peak-to-peak below ``flat_mv``) or a saturated
  one (at least ``saturation_fraction`` of the samples sit at the block's
  extreme values, as an amplifier pinned at its rail does);
* ``fibrillation-like``: the window is a near-sinusoid, by the VF filter
  leakage of Kuo and Dillman (1978) below ``vf_leakage``, and at least
  ``vf_band`` of its 1-30 Hz power lies in 2.5-8 Hz (VF and flutter
  concentrate their power there; noise does not), and less than ``vf_quiet``
  of it lies within 10% of its peak magnitude of zero (VF has no isoelectric
  line; wide but slow complexes, as in bundle branch block, do): R peaks are
  meaningless there (ventricular flutter/fibrillation, fast ventricular
  tachycardia);
* ``no QRS``: nothing QRS-like in the last ``quiet_s``: the QRS band (5-15 Hz)
  stays below ``quiet_qrs_mv`` (a 0.15 mV QRS reaches about 0.075 mV there;
  P waves and low-level noise stay well below) and the signal moves less than
  ``quiet_ptp_mv`` peak to peak (an electrode-motion step or an amplifier
  recovering from overload moves more, and hides the QRS complexes it
  carries). Asystole and pause alarms need such blocks: a stretch with
  QRS-like activity, or artefact, that gave no beat is not asystole;
* ``noisy signal``: the median magnitude of the QRS band (5-15 Hz) is at least
  ``noise_ratio`` of its 99th percentile: noise fills the space between
  QRS complexes.

Blocks that are signal lost or leads off are *unusable*: no beat is emitted
from them; nor from fibrillation-like blocks whose leakage is also below
``vf_gate_leakage`` (a stricter limit: wide regular complexes, paced or
ventricular, can pass the looser VF-alarm limits and keep their beats). Noisy
blocks still give beats. A technical alarm
(``signal lost``, ``leads off``, ``noisy signal``) starts after ``alarm_on_s``
of consecutive affected blocks and ends after ``alarm_off_s`` without.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from monitor.detect._filters import sosfilt_rows
from monitor.errors import ConfigError, require_positive

__all__ = ["QualityConfig", "QualityTracker", "TechnicalAlarm"]

CLEAN, NOISY, LOST, LEADS_OFF, FIBRILLATION = "clean", "noisy", "signal lost", "leads off", "fibrillation-like"
QUIET = "no QRS"
UNUSABLE = frozenset({LOST, LEADS_OFF, FIBRILLATION})
_KEEP_BLOCKS = 256
_ALARM_OF = {LOST: "signal lost", LEADS_OFF: "leads off", NOISY: "noisy signal"}


@dataclass(frozen=True)
class QualityConfig:
    block_s: float = 1.0
    window_s: float = 4.0
    flat_mv: float = 0.02
    lost_fraction: float = 0.5
    saturation_fraction: float = 0.2
    vf_leakage: float = 0.65
    vf_band: float = 0.6
    vf_quiet: float = 0.3
    vf_gate_leakage: float = 0.55  # fibrillation-like blocks this sinusoidal give no beats
    noise_ratio: float = 0.17
    quiet_s: float = 1.5
    quiet_qrs_mv: float = 0.08
    quiet_ptp_mv: float = 1.5  # set seeing mitdb 208 (overload, 1.6 mV) and vfdb 424 (asystole, 1.1 mV)
    alarm_on_s: float = 2.0
    noisy_on_s: float = 5.0
    alarm_off_s: float = 2.0

    def __post_init__(self) -> None:
        require_positive(self, *self.__dict__, prefix="quality ")
        if self.window_s < max(self.block_s, self.quiet_s):
            raise ConfigError(
                f"quality window_s={self.window_s} must be >= block_s={self.block_s} and quiet_s={self.quiet_s}"
            )


@lru_cache(maxsize=64)
def _bands(fs: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The 1-30 Hz and QRS-band (5-15 Hz) filters at ``fs`` (shared by every stream of that rate: never written)."""
    hi = min(30.0, 0.45 * fs)
    wide = np.ascontiguousarray(signal.butter(2, (1.0, hi), btype="bandpass", fs=fs, output="sos"))
    hi = min(15.0, 0.45 * fs)
    qrs = np.ascontiguousarray(signal.butter(2, (5.0, hi), btype="bandpass", fs=fs, output="sos"))
    return wide, qrs


@dataclass
class TechnicalAlarm:
    """A technical alarm episode; ``end`` is None while it lasts. Samples in stream indexing."""

    stream: str
    kind: str
    onset: int
    end: int | None = None


@dataclass
class _Episode:
    kind: str
    run: int = 0  # consecutive affected blocks
    clear: int = 0  # consecutive unaffected blocks
    first_bad: int = 0  # first sample of the current run
    last_bad_end: int = 0
    alarm: TechnicalAlarm | None = None


@dataclass
class QualityTracker:
    """Judges one stream's signal block by block; see the module docstring."""

    stream: str
    fs: float
    origin: int = 0
    config: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self) -> None:
        cfg = self.config
        self._block = max(1, round(cfg.block_s * self.fs))
        self._window = max(self._block, round(cfg.window_s * self.fs))
        self._sos_wide, self._sos_qrs = _bands(float(self.fs))
        self._zi_wide = np.zeros((1, self._sos_wide.shape[0], 2))
        self._zi_qrs = np.zeros((1, self._sos_qrs.shape[0], 2))
        self._raw: list[NDArray[np.float64]] = []  # samples of the block being filled
        self._raw_n = 0
        self._wide = np.zeros(self._window)  # last window of the 1-30 Hz signal
        self._qrs = np.zeros(self._window)
        self._held = np.zeros(self._window)  # last window of the signal itself (missing samples held)
        self._quiet = max(1, min(self._window, round(cfg.quiet_s * self.fs)))
        self._last = 0.0
        self._blocks = 0  # blocks judged so far
        # states of the latest blocks judged (enough for every beat still waiting to be sent)
        self.states: deque[str] = deque(maxlen=_KEEP_BLOCKS)
        self._gated: deque[bool] = deque(maxlen=_KEEP_BLOCKS)
        self._verdicts: list[tuple[int, str]] = []  # (block end, state) of the blocks judged, not yet taken
        self.counts: dict[str, int] = {}
        self._episodes = {kind: _Episode(kind) for kind in _ALARM_OF.values()}
        self.alarms: list[TechnicalAlarm] = []  # every episode, open or closed
        self._events: list[TechnicalAlarm] = []  # onsets and ends not yet taken by the owner

    @property
    def known_until(self) -> int:
        """Samples (stream indexing) before this index have been judged."""
        return self.origin + self._blocks * self._block

    def state_at(self, sample: int) -> str:
        k = (sample - self.origin) // self._block - (self._blocks - len(self.states))
        return self.states[k] if 0 <= k < len(self.states) else CLEAN

    @property
    def judged(self) -> int:
        """How many blocks have been judged so far."""
        return self._blocks

    def take_blocks(self) -> list[tuple[int, str]]:
        """``(block end sample, state)`` of every block judged since the last call, oldest first (however many
        one call to :meth:`process` judged: the rhythm logic needs each of them)."""
        out, self._verdicts = self._verdicts, []
        return out

    def usable(self, sample: int) -> bool:
        """Beats may come from here: not lost or flat, and not fibrillation-like by the strict leakage
        limit ``vf_gate_leakage`` (a fibrillation-like block above it raises VF alarms but keeps its beats)."""
        k = (sample - self.origin) // self._block - (self._blocks - len(self.states))
        if not 0 <= k < len(self.states):
            return True
        return self.states[k] not in UNUSABLE or (self.states[k] == FIBRILLATION and not self._gated[k])

    @property
    def current(self) -> str:
        return self.states[-1] if self.states else CLEAN

    @property
    def active_alarms(self) -> list[str]:
        return [e.kind for e in self._episodes.values() if e.alarm is not None and e.alarm.end is None]

    def take_events(self) -> list[TechnicalAlarm]:
        """Technical alarm onsets and ends since the last call, oldest first."""
        out, self._events = self._events, []
        return out

    @property
    def has_events(self) -> bool:
        """Technical alarm onsets or ends wait to be taken."""
        return bool(self._events)

    def process(self, x: NDArray[np.float64]) -> None:
        """Take the next samples (mV, NaN for missing)."""
        if self._raw_n + x.size < self._block:  # the common case: the block is not complete yet
            self._raw.append(x)
            self._raw_n += x.size
            return
        pos = 0
        while pos < x.size:
            take = min(self._block - self._raw_n, x.size - pos)
            self._raw.append(x[pos : pos + take])
            self._raw_n += take
            pos += take
            if self._raw_n == self._block:
                block = np.concatenate(self._raw) if len(self._raw) > 1 else self._raw[0]
                self._raw, self._raw_n = [], 0
                self._judge(block)

    def flush(self) -> None:
        """End of stream: close open alarms at the last judged sample."""
        for ep in self._episodes.values():
            if ep.alarm is not None and ep.alarm.end is None:
                ep.alarm.end = self.known_until
                self._events.append(replace(ep.alarm))
                ep.alarm = None

    # ------------------------------------------------------------ internals
    def _judge(self, block: NDArray[np.float64]) -> None:
        cfg = self.config
        finite = np.isfinite(block)
        n_finite = int(np.count_nonzero(finite))
        lost = 1.0 - n_finite / block.size
        if n_finite == block.size:
            held = block
        else:  # hold the last finite value across missing samples
            idx = np.where(finite, np.arange(block.size), -1)
            np.maximum.accumulate(idx, out=idx)
            held = np.where(idx >= 0, block[np.maximum(idx, 0)], self._last)
        self._last = float(held[-1])
        xx = held[None, :]  # sosfilt_rows filters a copy
        wide = sosfilt_rows(self._sos_wide, xx, self._zi_wide)[0]
        qrs = sosfilt_rows(self._sos_qrs, xx, self._zi_qrs)[0]
        n = block.size
        self._wide = np.concatenate((self._wide[n:], wide))
        self._qrs = np.concatenate((self._qrs[n:], qrs))
        self._held = np.concatenate((self._held[n:], held))
        warm = (self._blocks + 1) * self._block >= self._window
        gated = False
        if lost >= cfg.lost_fraction:
            state = LOST
        else:
            vals = block if n_finite == block.size else block[finite]
            lo, hi = float(vals.min()), float(vals.max())
            at_rail = (np.count_nonzero(vals == lo) + np.count_nonzero(vals == hi)) / vals.size
            if hi - lo < cfg.flat_mv or at_rail >= cfg.saturation_fraction:
                state = LEADS_OFF
            elif warm and (leakage := self._fibrillation_like(self._wide)) is not None:
                state = FIBRILLATION
                gated = leakage < cfg.vf_gate_leakage
            elif warm and self._is_quiet():
                state = QUIET
            elif warm and self._noise_ratio(self._qrs) >= cfg.noise_ratio:
                state = NOISY
            else:
                state = CLEAN
        start = self.origin + self._blocks * self._block
        self._blocks += 1
        self.states.append(state)
        self._gated.append(gated)
        self._verdicts.append((start + n, state))
        self.counts[state] = self.counts.get(state, 0) + 1
        self._update_alarms(state, start, start + n)

    @staticmethod
    def _leakage(x: NDArray[np.float64]) -> float:
        """VF filter leakage: near 0 for a sinusoid, ~1 for spiky QRS complexes."""
        a = np.abs(x)
        slope = float(np.abs(x[1:] - x[:-1]).sum())
        if slope <= 0:
            return 1.0
        total = float(a.sum())
        period = round(math.pi * total / slope)
        if not 1 <= period < x.size // 2:
            return 1.0
        num = float(np.abs(x[period:] + x[:-period]).sum())
        den = 2.0 * total - float(a[:period].sum()) - float(a[-period:].sum())
        return num / den if den > 0 else 1.0

    def _fibrillation_like(self, x: NDArray[np.float64]) -> float | None:
        """The window's VF-filter leakage if it is fibrillation-like, else None."""
        cfg = self.config
        leakage = self._leakage(x)
        if leakage >= cfg.vf_leakage or self._vf_band(x) < cfg.vf_band:
            return None
        a = np.abs(x)
        quiet = float(np.count_nonzero(a < 0.1 * a.max())) / a.size  # near the baseline: none in VF
        return leakage if quiet < cfg.vf_quiet else None

    def _vf_band(self, x: NDArray[np.float64]) -> float:
        """Fraction of the 1-30 Hz power that lies in 2.5-8 Hz, where VF and flutter concentrate theirs
        (noise spreads wider: muscle noise higher, electrode motion lower)."""
        spectrum = np.abs(np.fft.rfft(x - x.mean())) ** 2
        f = np.fft.rfftfreq(x.size, 1.0 / self.fs)
        total = float(spectrum[(f >= 1.0) & (f <= 30.0)].sum())
        return float(spectrum[(f >= 2.5) & (f <= 8.0)].sum()) / total if total > 0 else 0.0

    def _is_quiet(self) -> bool:
        """Nothing QRS-like in the last ``quiet_s``: no QRS-band deflection, no artefact excursion."""
        cfg = self.config
        k = self._quiet
        if float(np.abs(self._qrs[-k:]).max()) >= cfg.quiet_qrs_mv:
            return False
        return float(np.ptp(self._held[-k:])) < cfg.quiet_ptp_mv

    @staticmethod
    def _noise_ratio(x: NDArray[np.float64]) -> float:
        """Median over 99th percentile (nearest rank) of the magnitude."""
        a = np.abs(x)
        k50, k99 = (a.size - 1) // 2, int(0.99 * (a.size - 1))
        part = np.partition(a, (k50, k99))
        p99 = float(part[k99])
        return float(part[k50]) / p99 if p99 > 0 else 0.0

    def _update_alarms(self, state: str, start: int, end: int) -> None:
        cfg = self.config
        on_blocks = max(1, round(cfg.alarm_on_s / cfg.block_s))
        noisy_on = max(1, round(cfg.noisy_on_s / cfg.block_s))
        off_blocks = max(1, round(cfg.alarm_off_s / cfg.block_s))
        for kind, ep in self._episodes.items():
            affected = _ALARM_OF.get(state) == kind
            if affected:
                if ep.run == 0:
                    ep.first_bad = start
                ep.run += 1
                ep.clear = 0
                ep.last_bad_end = end
                needed = noisy_on if kind == "noisy signal" else on_blocks
                if ep.alarm is None and ep.run >= needed:
                    ep.alarm = TechnicalAlarm(self.stream, kind, ep.first_bad)
                    self.alarms.append(ep.alarm)
                    self._events.append(replace(ep.alarm))
            else:
                ep.run = 0
                ep.clear += 1
                if ep.alarm is not None and ep.clear >= off_blocks:
                    ep.alarm.end = ep.last_bad_end
                    self._events.append(replace(ep.alarm))
                    ep.alarm = None
