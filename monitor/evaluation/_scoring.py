"""Beat-by-beat scoring against reference annotations (ANSI/AAMI EC57 style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from monitor.vocabulary import BEAT_SYMBOLS

__all__ = ["BEAT_SYMBOLS", "MatchResult", "match_beats", "pair_beats", "reference_beats"]


@dataclass(frozen=True)
class MatchResult:
    """Counts from matching detected beats to reference beats."""

    tp: int
    fp: int
    fn: int

    @property
    def se(self) -> float:
        """Sensitivity in percent (NaN when there is no reference beat)."""
        return 100.0 * self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        """Positive predictivity in percent (NaN when nothing was detected)."""
        return 100.0 * self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 100.0 * 2 * self.tp / denom if denom else float("nan")

    def describe(self) -> str:
        """The counts and, when there are reference beats, Se and +P: never ``nan`` for a record without any."""
        counts = f"TP {self.tp} FP {self.fp} FN {self.fn}"
        if self.tp + self.fn == 0:
            return f"no reference beats ({self.fp} detected)"
        ppv = f"{self.ppv:.2f}" if self.tp + self.fp else "- (nothing detected)"
        return f"{counts}, Se {self.se:.2f} +P {ppv}"

    def __add__(self, other: MatchResult) -> MatchResult:
        return MatchResult(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def reference_beats(samples: ArrayLike, symbols: list[str]) -> NDArray[np.int64]:
    """Sample indices of the annotations whose symbol marks a beat."""
    s = np.asarray(samples, dtype=np.int64)
    keep = np.fromiter((sym in BEAT_SYMBOLS for sym in symbols), dtype=bool, count=len(symbols))
    return s[keep]


def pair_beats(reference: ArrayLike, detected: ArrayLike, window: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices (into the sorted inputs) of reference/detection pairs within ``window`` samples.

    Greedy in time order, always taking the closest available partner, as the
    EC57 beat-by-beat comparison does; each beat is paired at most once.
    Both inputs must be sorted.
    """
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64).tolist()
    ri: list[int] = []
    di: list[int] = []
    j = 0
    nd = len(det)
    for i, r in enumerate(ref.tolist()):
        while j < nd and det[j] < r - window:
            j += 1
        if j >= nd:
            continue
        best = j
        if j + 1 < nd and abs(det[j + 1] - r) < abs(det[j] - r):
            best = j + 1
        if abs(det[best] - r) <= window:
            ri.append(i)
            di.append(best)
            j = best + 1
    return np.asarray(ri, dtype=np.intp), np.asarray(di, dtype=np.intp)


def match_beats(reference: ArrayLike, detected: ArrayLike, window: int) -> MatchResult:
    """Count reference beats matched by a detection within ``window`` samples (see :func:`pair_beats`)."""
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    det = np.sort(np.asarray(detected, dtype=np.int64))
    tp = int(pair_beats(ref, det, window)[0].size)
    return MatchResult(tp=tp, fp=int(det.size - tp), fn=int(ref.size - tp))
