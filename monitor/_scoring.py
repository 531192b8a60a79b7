"""Beat-by-beat scoring against reference annotations (ANSI/AAMI EC57 style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BEAT_SYMBOLS", "MatchResult", "match_beats", "reference_beats"]

#: Annotation symbols that mark a beat (PhysioNet's ``isqrs`` set).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


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

    def __add__(self, other: MatchResult) -> MatchResult:
        return MatchResult(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def reference_beats(samples: ArrayLike, symbols: list[str]) -> NDArray[np.int64]:
    """Sample indices of the annotations whose symbol marks a beat."""
    s = np.asarray(samples, dtype=np.int64)
    keep = np.fromiter((sym in BEAT_SYMBOLS for sym in symbols), dtype=bool, count=len(symbols))
    return s[keep]


def match_beats(reference: ArrayLike, detected: ArrayLike, window: int) -> MatchResult:
    """Pair each reference beat with at most one detection within ``window`` samples.

    Greedy in time order, always taking the closest available partner, as the
    EC57 beat-by-beat comparison does.
    """
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    det = np.sort(np.asarray(detected, dtype=np.int64))
    tp = 0
    j = 0
    nd = det.size
    for r in ref.tolist():
        while j < nd and det[j] < r - window:
            j += 1
        if j >= nd:
            continue
        best = j
        if j + 1 < nd and abs(det[j + 1] - r) < abs(det[j] - r):
            # the next detection is closer, but it may belong to the next reference
            best = j + 1
        if abs(int(det[best]) - r) <= window:
            tp += 1
            j = best + 1
    return MatchResult(tp=tp, fp=int(nd - tp), fn=int(ref.size - tp))
