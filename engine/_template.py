"""Each stream's dominant beat (its template), and every beat measured against it.

What generalizes across leads, rates and people is a beat *relative to that
patient*: a QRS as wide and as shaped as the patient's usual beat is most
likely normal, whatever the lead shows. Bedside monitors learn the dominant
beat from the first clean beats, keep it up to date and re-learn it when the
morphology changes for good (a lead change); :class:`TemplateTracker` does the
same for one stream, and :class:`BeatShape` is what it measures for each beat:

=================  ======================================================================
feature            meaning
=================  ======================================================================
``qrs_corr``       Pearson correlation of the QRS (-100 ms .. +120 ms around the R peak)
                   with the template's, best over shifts of up to ~16 ms
``width_ratio``    QRS width over the template's (width: the span over which the slope
                   exceeds a fifth of its maximum, within -150 ms .. +200 ms)
``amp_ratio``      QRS peak-to-peak amplitude over the template's
``residual``       RMS of beat minus template over the QRS, over the template's
                   peak-to-peak amplitude (both aligned, mean removed)
``p_corr``         correlation of the atrial part (-300 ms .. -80 ms) with the
                   template's: high when the patient's P wave is there, low in a
                   fibrillating baseline or before an ectopic beat
``width_s``        the beat's own QRS width in seconds
``learned``        1 once the template is learned; before that the other features hold
                   neutral values (a normal-looking beat) and ``width_s``
=================  ======================================================================

The tracker is a pure function of the beats it is shown, in order: it reads no
clock, so streaming equals offline and the features are the same at any chunk
size or replay speed. Every rate works: regions are in seconds, and widths and
correlations do not depend on the sampling rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import astuple, dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["N_SHAPE", "SHAPE_FEATURES", "BeatShape", "TemplateConfig", "TemplateTracker"]

#: Names of the shape features, in the order of :meth:`BeatShape.as_array`.
SHAPE_FEATURES: tuple[str, ...] = (
    "qrs_corr",
    "width_ratio",
    "amp_ratio",
    "residual",
    "p_corr",
    "width_s",
    "learned",
)
N_SHAPE = len(SHAPE_FEATURES)


@dataclass(frozen=True)
class BeatShape:
    """One beat against its stream's template (see the module docstring)."""

    qrs_corr: float = 1.0
    width_ratio: float = 1.0
    amp_ratio: float = 1.0
    residual: float = 0.0
    p_corr: float = 1.0
    width_s: float = 0.08
    learned: bool = False

    def as_array(self) -> NDArray[np.float32]:
        return np.asarray(astuple(self), dtype=np.float32)

    @classmethod
    def from_array(cls, values: NDArray[np.floating]) -> BeatShape:
        v = [float(x) for x in np.asarray(values, dtype=np.float64).ravel()[:N_SHAPE]]
        if len(v) != N_SHAPE:
            raise ValueError(f"a beat shape has {N_SHAPE} values, got {len(v)}")
        corr, width_ratio, amp_ratio, residual, p_corr, width_s, learned = v
        return cls(corr, width_ratio, amp_ratio, residual, p_corr, width_s, learned >= 0.5)

    @property
    def unlike(self) -> bool:
        """Clearly another morphology than the dominant beat (only once the template is learned)."""
        return self.learned and (self.qrs_corr < 0.8 or self.width_ratio > 1.4 or self.residual > 0.5)

    @property
    def wide(self) -> bool:
        """Wider than the dominant beat by at least a third, or wider than 120 ms (only once learned)."""
        return self.learned and (self.width_ratio >= 1.33 or self.width_s >= 0.12)


@dataclass(frozen=True)
class TemplateConfig:
    """How the dominant beat is learned, kept and re-learned."""

    learn_beats: int = 12  # candidates judged together when learning
    learn_agree: int = 4  # a morphology seen in at least this many of them (QRS correlation >= learn_corr) ...
    learn_corr: float = 0.9  # ... may be the dominant beat: of those, the narrowest QRS is chosen
    check_beats: int = 64  # every this many beats, the template must have matched ...
    check_match: float = 0.4  # ... at least this fraction of them (QRS correlation >= learn_corr), else re-learn
    update_corr: float = 0.92  # a beat this like the template (and of similar width and amplitude) updates it
    update_rate: float = 1.0 / 16.0  # weight of each matching beat in the running template
    relearn_beats: int = 20  # re-learn after this many unlike beats in a row ...
    relearn_s: float = 30.0  # ... spanning at least this long ...
    relearn_max_bpm: float = 100.0  # ... at a rate below this (a ventricular tachycardia is not re-learned)


def _corr(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / den if den > 1e-12 else 0.0


class TemplateTracker:
    """The dominant beat of one stream, from beat windows that start ``pre`` samples before the R peak."""

    def __init__(self, fs: float, pre: int, length: int, config: TemplateConfig | None = None) -> None:
        self.fs = fs
        self.config = config or TemplateConfig()
        self.pre = pre
        self.length = length
        self._shift = max(1, round(0.016 * fs))

        def region(lo_s: float, hi_s: float) -> slice:
            lo = min(max(pre + round(lo_s * fs), self._shift), length - self._shift - 1)
            hi = min(max(pre + round(hi_s * fs), lo + 2), length - self._shift)
            return slice(lo, hi)

        self._qrs = region(-0.10, 0.12)
        self._width = region(-0.15, 0.20)
        self._atrial = region(-0.30, -0.08)
        self.template: NDArray[np.float64] | None = None
        self._template_width = 0.08
        self._template_ptp = 1.0
        self._ref = np.zeros(self._qrs.stop - self._qrs.start)  # the template's QRS, mean removed
        self._ref_norm = 1.0
        self._candidates: deque[NDArray[np.float64]] = deque(maxlen=self.config.learn_beats)
        self._recent: deque[NDArray[np.float64]] = deque(maxlen=self.config.learn_beats)
        self._checked = 0  # beats measured since the template was learned or last checked ...
        self._matched = 0  # ... and how many of them matched it
        self._checked_first = 0  # R-peak sample of the first of them
        self._smooth = np.ones(max(1, round(0.02 * fs))) / max(1, round(0.02 * fs))
        self._unlike_first = 0  # R-peak sample of the first of the unlike beats in a row ...
        self._unlike_count = 0  # ... how many there are ...
        self._unlike_last: deque[int] = deque(maxlen=self.config.relearn_beats)  # ... and the latest ones' samples

    @property
    def learned(self) -> bool:
        return self.template is not None

    def reset(self) -> None:
        """Forget the template (a new segment, another lead): it is learned again from the next beats."""
        self.template = None
        self._candidates.clear()
        self._recent.clear()
        self._unlike_count = 0
        self._checked = 0

    def observe(self, window: NDArray[np.floating], sample: int = 0) -> BeatShape:
        """Measure the beat (R peak at ``sample``) against the template, then learn from it."""
        x = np.asarray(window, dtype=np.float64)
        if x.shape != (self.length,) or not np.isfinite(x).all():
            return BeatShape(learned=False)
        width = self._width_s(x)
        if self.template is None:
            self._candidates.append(x)
            self._try_learn()
            return BeatShape(width_s=width, learned=False)
        shape = self._measure(x, width)
        self._recent.append(x)
        self._learn_from(x, shape, sample)
        self._check_dominance(shape, sample)
        return shape

    # ------------------------------------------------------------ measuring
    def _width_s(self, x: NDArray[np.float64]) -> float:
        d = np.abs(np.diff(np.convolve(x[self._width], self._smooth, mode="valid")))
        peak = float(d.max()) if d.size else 0.0
        if peak <= 1e-9:
            return 0.0
        above = np.flatnonzero(d >= 0.2 * peak)
        return float(above[-1] - above[0] + 1) / self.fs

    def _aligned(self, x: NDArray[np.float64], part: slice) -> tuple[float, int]:
        """Best correlation of ``x`` against the template over ``part``, over small shifts, and the shift."""
        k = self._shift
        shifted = np.lib.stride_tricks.sliding_window_view(x[part.start - k : part.stop + k], part.stop - part.start)
        centred = shifted - shifted.mean(axis=1, keepdims=True)
        den = np.sqrt(np.einsum("ij,ij->i", centred, centred)) * self._ref_norm
        corr = (centred @ self._ref) / np.maximum(den, 1e-12)
        best = int(np.argmax(corr))
        return float(corr[best]), best - k

    def _measure(self, x: NDArray[np.float64], width: float) -> BeatShape:
        t = self.template
        if t is None:  # only called once learned
            return BeatShape(width_s=width, learned=False)
        q = self._qrs
        corr, k = self._aligned(x, q)
        seg = x[q.start + k : q.stop + k]
        seg0 = seg - seg.mean()
        ptp = float(seg.max() - seg.min())
        residual = float(np.sqrt(np.mean((seg0 - self._ref) ** 2))) / self._template_ptp
        a = self._atrial
        p_corr = _corr(x[a.start + k : a.stop + k], t[a])
        return BeatShape(
            qrs_corr=corr,
            width_ratio=float(np.clip(width / max(self._template_width, 1e-3), 0.0, 5.0)),
            amp_ratio=float(np.clip(ptp / self._template_ptp, 0.0, 5.0)),
            residual=float(min(residual, 5.0)),
            p_corr=p_corr,
            width_s=width,
            learned=True,
        )

    # ------------------------------------------------------------ learning
    def _set_template(self, t: NDArray[np.float64]) -> None:
        self.template = t
        self._template_width = max(self._width_s(t), 1.0 / self.fs)
        q = t[self._qrs]
        self._template_ptp = max(float(q.max() - q.min()), 1e-3)
        self._ref = q - q.mean()
        self._ref_norm = max(float(np.sqrt(self._ref @ self._ref)), 1e-12)

    def _try_learn(self) -> None:
        cfg = self.config
        cands = list(self._candidates)
        if len(cands) < cfg.learn_beats:
            return
        q = self._qrs
        seg = np.stack([c[q] for c in cands])
        seg -= seg.mean(axis=1, keepdims=True)
        energy = np.einsum("ij,ij->i", seg, seg)
        den = np.sqrt(np.outer(energy, energy))
        sim = np.where(den > 1e-12, (seg @ seg.T) / np.maximum(den, 1e-12), 0.0)  # every pair's _corr at once
        np.fill_diagonal(sim, 1.0)
        alike = sim >= cfg.learn_corr
        agree = alike.sum(axis=1)
        eligible = np.flatnonzero(agree >= cfg.learn_agree)
        if eligible.size == 0:
            return  # no dominant beat yet: slide on with the next beat
        widths = [self._width_s(c) for c in cands]
        # the normally conducted beat is the narrowest common morphology (ectopic ventricular beats are wider)
        best = min(
            eligible.tolist(),
            key=lambda i: (float(np.median([widths[j] for j in np.flatnonzero(alike[i])])), -agree[i]),
        )
        members = [cands[i] for i in np.flatnonzero(alike[best])]
        self._set_template(np.mean(members, axis=0))
        self._candidates.clear()
        self._unlike_count = 0
        self._checked = 0

    def _check_dominance(self, shape: BeatShape, sample: int) -> None:
        """Re-learn when the template has stopped being the dominant beat (it was learned on ectopic beats)."""
        cfg = self.config
        if self._checked == 0:
            self._checked_first = sample
        self._checked += 1
        self._matched += shape.qrs_corr >= cfg.learn_corr
        if self._checked < cfg.check_beats:
            return
        span_s = (sample - self._checked_first) / self.fs
        rate = 60.0 * (self._checked - 1) / span_s if span_s > 0 else float("inf")
        if self._matched < cfg.check_match * self._checked and rate < cfg.relearn_max_bpm:
            self._candidates = deque(self._recent, maxlen=cfg.learn_beats)
            self._try_learn()
        self._checked = 0
        self._matched = 0

    def _learn_from(self, x: NDArray[np.float64], shape: BeatShape, sample: int) -> None:
        cfg = self.config
        t = self.template
        if t is None:
            return
        if shape.qrs_corr >= cfg.update_corr and 0.75 <= shape.amp_ratio <= 1.33 and shape.width_ratio <= 1.25:
            self._set_template((1.0 - cfg.update_rate) * t + cfg.update_rate * x)
            self._unlike_count = 0
            self._candidates.clear()
            return
        if not shape.unlike:
            self._unlike_count = 0
            self._candidates.clear()
            return
        if self._unlike_count == 0:
            self._unlike_first = sample
            self._unlike_last.clear()
        self._unlike_count += 1
        self._unlike_last.append(sample)
        self._candidates.append(x)
        if self._unlike_count < cfg.relearn_beats:
            return
        span_s = (sample - self._unlike_first) / self.fs
        recent = self._unlike_last
        recent_s = (recent[-1] - recent[0]) / self.fs
        rate = 60.0 * (len(recent) - 1) / recent_s if recent_s > 0 else float("inf")
        if span_s >= cfg.relearn_s and rate < cfg.relearn_max_bpm:
            self.template = None
            self._unlike_count = 0
            self._try_learn()
