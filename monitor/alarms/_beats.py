"""Labelled beats as the rhythm rules see them, and the run of like beats that ends the rhythm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine import BeatShape

__all__ = ["Beat", "ectopic", "run_rate", "trailing_run", "ventricular"]


@dataclass
class Beat:
    """One labelled beat: its R-peak sample, its AAMI class symbol (``N``, ``S``, ``V``, ``F``, ``Q``), the
    sample at which it was ready from the samples alone (its window and next R peak complete; at least ``sample``)
    and its morphology against the stream's dominant beat."""

    sample: int
    label: str
    ready: int = 0
    #: the beat against the stream's dominant beat (``None``: not measured)
    shape: BeatShape | None = None


def ventricular(beat: Beat) -> bool:
    """A ventricular beat on the evidence: labelled ``V`` and, once measured against a learned dominant beat,
    both wide and unlike it (a ``V`` label on a beat shaped like the patient's usual beat is not enough).
    Without a shape, or before the template is learned, the label alone decides."""
    if beat.label != "V":
        return False
    shape = beat.shape
    return shape is None or not shape.learned or (shape.wide and shape.unlike)


def ectopic(beat: Beat) -> bool:
    """A beat that is not the patient's dominant rhythm: labelled ``S`` or ``V``, or unlike the dominant beat."""
    return beat.label in ("S", "V") or (beat.shape is not None and beat.shape.unlike)


def trailing_run(beats: Sequence[Beat], label: str) -> list[Beat]:
    """The beats labelled ``label`` at the end of ``beats`` (oldest first); empty when the last beat is another."""
    out: list[Beat] = []
    for b in reversed(beats):
        if b.label != label:
            break
        out.append(b)
    out.reverse()
    return out


def run_rate(run: Sequence[Beat], fs: float) -> float | None:
    """The mean rate (bpm) of a run of beats, from its first to its last beat; ``None`` below two beats."""
    if len(run) < 2:
        return None
    return 60.0 * (len(run) - 1) * fs / (run[-1].sample - run[0].sample)
