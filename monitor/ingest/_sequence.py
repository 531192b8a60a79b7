"""Per-stream sequence bookkeeping: gaps, duplicates and reordering from sequence numbers and sample indices."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SeqVerdict", "SequenceTracker"]


@dataclass
class SeqVerdict:
    """What to do with a frame: ``accept`` it, with ``gap`` samples missing before it.

    A rejected frame has a ``reason``; ``foreign`` marks one that does not fit this
    sequence at all and may belong to another (a restarted device, or a second
    device sending under the same stream id): the caller decides what it is.
    """

    accept: bool
    gap: int = 0
    reason: str = ""
    foreign: bool = False


_RECENT = 64  # accepted frames remembered to recognise exact duplicates


@dataclass
class SequenceTracker:
    """Detects gaps, duplicates and reordering from sequence numbers and sample indices.

    Rules: a frame is accepted when its sequence number is the next expected one
    or later and its first sample is the next expected one or later, at most
    ``max_gap`` samples ahead (missing sequence numbers are counted as a gap;
    missing samples are reported so the caller can fill them). A frame from the
    past is never inserted retroactively (detection is causal): it is dropped
    and counted as ``reordered`` when its sequence number was one of those
    missed, or as ``duplicate`` when it repeats one of the last 64 accepted
    frames exactly. Every other frame is rejected as ``foreign`` (reason
    ``duplicate`` for an older sequence number, ``overlap`` for samples already
    held, ``jump`` for samples further ahead than ``max_gap``) without changing
    the tracker; the caller counts it (:meth:`note`) once it has decided.
    """

    next_seq: int = 0
    next_sample: int = 0
    max_gap: int | None = None
    frames_missing: int = 0
    samples_missing: int = 0
    duplicates: int = 0
    reordered: int = 0
    overlaps: int = 0
    jumps: int = 0
    _missed: set[int] = field(default_factory=set)
    _recent: dict[int, int] = field(default_factory=dict)  # seq -> start of recently accepted frames

    def check(self, seq: int, start: int) -> SeqVerdict:
        if seq < self.next_seq:
            if seq in self._missed:
                self._missed.discard(seq)
                self.reordered += 1
                return SeqVerdict(False, reason="reordered")
            if self._recent.get(seq) == start:
                self.duplicates += 1
                return SeqVerdict(False, reason="duplicate")
            return SeqVerdict(False, reason="duplicate", foreign=True)
        if start < self.next_sample:
            return SeqVerdict(False, reason="overlap", foreign=True)
        gap = start - self.next_sample
        if self.max_gap is not None and gap > self.max_gap:
            return SeqVerdict(False, reason="jump", foreign=True)
        if seq > self.next_seq:
            missed = seq - self.next_seq
            self.frames_missing += missed
            if missed <= 1024:
                self._missed.update(range(self.next_seq, seq))
                if len(self._missed) > 4096:
                    self._missed = set(sorted(self._missed)[-1024:])
        self.samples_missing += gap
        self.next_seq = seq + 1
        self._recent[seq] = start
        if len(self._recent) > _RECENT:
            del self._recent[next(iter(self._recent))]  # the oldest (dicts keep insertion order)
        return SeqVerdict(True, gap=gap)

    def follows(self, seq: int, start: int) -> bool:
        """Accept the frame if it is exactly the next one (what :meth:`check` accepts with no gap); else
        change nothing and return False (:meth:`check` decides)."""
        if seq != self.next_seq or start != self.next_sample:
            return False
        self.next_seq = seq + 1
        recent = self._recent
        recent[seq] = start
        if len(recent) > _RECENT:
            del recent[next(iter(recent))]
        return True

    def note(self, reason: str) -> None:
        """Count a foreign frame the caller finally rejected under ``reason``."""
        if reason == "duplicate":
            self.duplicates += 1
        elif reason == "overlap":
            self.overlaps += 1
        elif reason == "jump":
            self.jumps += 1

    def advance(self, n: int) -> None:
        """Record that ``n`` samples of an accepted frame were taken."""
        self.next_sample += n

    def restart(self, seq: int, start: int) -> None:
        """Follow a new sequence from ``seq``/``start`` (a device restart); counters are kept."""
        self.next_seq = seq
        self.next_sample = start
        self._missed.clear()
        self._recent.clear()
