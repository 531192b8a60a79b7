"""The typed interface between the monitor and the inference engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from engine._template import BeatShape

__all__ = [
    "AAMI_OF_SYMBOL",
    "AAMI_SYMBOLS",
    "BEAT_SYMBOLS",
    "CLASSES",
    "Beat",
    "BeatClassifier",
    "LabeledBeat",
    "UnclassifiedClassifier",
]

# The beat vocabulary lives here, at the lowest layer, because the engine cannot import the monitor;
# ``monitor.vocabulary`` re-exports it beside the alarm kinds.

#: Beat classes (AAMI EC57), in the order of the classifier's outputs.
CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

#: AAMI EC57 class -> the MIT-BIH symbol written for it in annotation files.
AAMI_SYMBOLS: dict[str, str] = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "Q"}

#: MIT-BIH beat symbol -> AAMI EC57 class (the symbols of ``AAMI_SYMBOLS`` map back to their class).
AAMI_OF_SYMBOL: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}

#: MIT-BIH annotation symbols that mark a beat (reference beats for detection scoring).
BEAT_SYMBOLS: frozenset[str] = frozenset("NLRBAaJSVrFejnE/fQ?")


@dataclass(frozen=True, eq=False)
class Beat:
    """One detected beat, as the engine receives it.

    Sample indices are in the source stream's own indexing and rate; RR
    intervals are in seconds (``None`` where not known: first beat, or no next
    beat within the wait limit). ``window`` holds the detection lead in mV,
    ``window[0]`` being sample ``window_start``.
    """

    stream: str
    sample: int
    fs: float
    rr_prev: float | None
    rr_next: float | None
    rr_local: float | None  # mean of the 8 RR intervals before rr_prev
    rr_mean: float | None  # long-running mean RR of this stream before rr_prev
    window: NDArray[np.float32]
    window_start: int
    ready_at: float  # monotonic time the beat became ready for the engine
    #: the stream sample at which the beat was ready from the samples alone (its window, the quality of its
    #: block and its next R peak, or the wait cap, complete); ``None``: not known (the R-peak sample is used)
    ready_sample: int | None = None
    #: the beat against its stream's dominant beat (:mod:`engine._template`); ``None``: not measured
    shape: BeatShape | None = None


@dataclass(frozen=True)
class LabeledBeat:
    """A beat with its AAMI class (``N``, ``S``, ``V``, ``F`` or ``Q``)."""

    beat: Beat
    label: str

    @property
    def symbol(self) -> str:
        """MIT-BIH annotation symbol for the label."""
        return AAMI_SYMBOLS[self.label]


@runtime_checkable
class BeatClassifier(Protocol):
    """Anything that turns a batch of beats into one AAMI class per beat."""

    name: str

    def classify(self, beats: Sequence[Beat]) -> list[str]: ...


class UnclassifiedClassifier:
    """Labels every beat ``Q`` (unclassified): used when no trained model is loaded."""

    name = "unclassified"

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        return ["Q"] * len(beats)
