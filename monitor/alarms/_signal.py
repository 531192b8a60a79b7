"""The signal-quality blocks of one stream as the rhythm rules see them, and ventricular fibrillation.

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``vfib``                high      the signal is fibrillation-like (VF-filter leakage, see
                                  :mod:`monitor.detect`) in ``vf_on_blocks`` of the last
                                  ``vf_window_blocks`` one-second blocks
======================  ========  ==========================================================

The VF onset is the start of the first fibrillation-like block among those
that raised it. Once on, VF stays on while any recent block is
fibrillation-like. A lost, leads-off or fibrillation-like stretch of signal is
not *usable* for the absence of beats: no asystole or pause is raised over it.
Nor over a stretch with QRS-like activity or artefact that gave no beat: the
absence of beats counts only where the blocks judged say ``no QRS`` (nothing
QRS-like in their last 1.5 s, see :mod:`monitor.detect`).
"""

from __future__ import annotations

from collections import deque

from monitor.alarms._states import AlarmStates
from monitor.vocabulary import ALARM_KINDS

__all__ = ["CLEAN", "FIBRILLATION", "QUIET", "UNMEASURABLE", "SignalBlocks", "check_vf"]

#: Quality states of a judged block (those of the detection stage's quality tracker) that the rules read.
CLEAN = "clean"
FIBRILLATION = "fibrillation-like"
#: A block with nothing QRS-like in it: where the absence of beats is asystole rather than missed beats.
QUIET = "no QRS"
#: States in which there is no signal to measure: no heart rate over them.
UNMEASURABLE = frozenset({"signal lost", "leads off"})
_UNUSABLE = UNMEASURABLE | {FIBRILLATION}


class SignalBlocks:
    """The quality verdicts of the latest judged blocks, each ``tick`` samples long."""

    def __init__(self, tick: int) -> None:
        self._tick = tick
        self._blocks: deque[tuple[int, str]] = deque(maxlen=64)  # (block end, state)
        #: the end of the latest block with no signal to measure (lost or leads off), if any
        self.unmeasurable_until: int | None = None

    def add(self, block_end: int, state: str) -> None:
        self._blocks.append((block_end, state))
        if state in UNMEASURABLE:
            self.unmeasurable_until = block_end

    @property
    def latest(self) -> str:
        """The state of the latest block (clean before the first)."""
        return self._blocks[-1][1] if self._blocks else CLEAN

    def recent(self, n: int) -> list[tuple[int, str]]:
        """The last ``n`` blocks, oldest first."""
        return list(self._blocks)[-n:]

    def usable_between(self, a: int, b: int) -> bool:
        """No block overlapping (a, b] was lost, leads off or fibrillation-like (blocks not judged yet are usable)."""
        return not any(end > a and end - self._tick < b and state in _UNUSABLE for end, state in self._blocks)

    def quiet_between(self, a: int, b: int) -> bool:
        """Every block ending in (a, b] that has been judged says ``no QRS`` (true when there is none)."""
        return all(state == QUIET for end, state in self._blocks if a < end <= b)

    def vf_quiet(self, n: int) -> bool:
        """There are blocks and none of the last ``n`` is fibrillation-like."""
        recent = self.recent(n)
        return bool(recent) and all(state != FIBRILLATION for _, state in recent)

    def first_fibrillation(self, n: int) -> int:
        """The start of the first fibrillation-like block among the last ``n`` (else the end of the latest)."""
        blocks = self.recent(n)
        for i, (end, state) in enumerate(blocks):
            if state == FIBRILLATION:
                return end - self._tick if i == 0 else blocks[i - 1][0]
        return blocks[-1][0]


def check_vf(alarms: AlarmStates, blocks: SignalBlocks, t: int) -> None:
    """Judge VF after the block ending at sample ``t``."""
    cfg = alarms.config
    fib = sum(1 for _, state in blocks.recent(cfg.vf_window_blocks) if state == FIBRILLATION)
    if fib >= cfg.vf_on_blocks or ("vfib" in alarms and fib > 0):
        onset = alarms.onset("vfib") if "vfib" in alarms else blocks.first_fibrillation(cfg.vf_window_blocks)
        alarms.sustain("vfib", onset, t, {"blocks": fib}, ALARM_KINDS["vfib"].text)
