"""Dynamic batching of beats under a latency budget, as a pure state machine.

Modelled on Triton's dynamic batcher: a batch leaves at once when it reaches
the backend's largest efficient size; otherwise it waits, but no longer than
the oldest beat's deadline (its ready time plus the budget) minus the
predicted service time of the batch as it stands, and minus that of a full
batch: one backend serves batches one at a time, so a batch started just
before the deadline must not make the waiting beats late. Beats of streams with an
active or suspected alarm go first. The queue is bounded: when it is full the
oldest beat of a stream without an alarm is shed (counted per stream), and
beats that miss their deadline are still classified but counted as late.

The batcher owns no thread and reads no clock of its own: the driver queues
beats with ``on_beat``, and whenever its backend is free asks
``on_deadline(now)`` for the batch that is due (a full one at once, a partial
one at its deadline), sleeping until ``next_deadline()`` otherwise. While the
backend is busy, beats pile up in the bounded queue. Tests drive it with a
fake clock.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from engine._errors import EngineConfigError, require_positive


class Queued(Protocol):
    """What the batcher needs of an item: its stream and when it became ready."""

    @property
    def stream(self) -> str: ...

    @property
    def ready_at(self) -> float: ...


T = TypeVar("T", bound=Queued)

__all__ = ["Batcher", "BatcherConfig", "BatcherStats", "ServiceTimeModel"]


@dataclass(frozen=True)
class BatcherConfig:
    max_batch: int = 256  # the backend's largest efficient batch
    latency_budget_s: float = 0.050  # from a beat being ready to its label
    max_queue: int = 16384  # beats held at most; beyond, shed by policy
    margin_s: float = 0.002  # safety margin on the service-time prediction

    def __post_init__(self) -> None:
        require_positive(self, "max_batch", "latency_budget_s", "max_queue")
        if not (math.isfinite(self.margin_s) and self.margin_s >= 0):
            raise EngineConfigError(f"margin_s must be >= 0, got {self.margin_s!r}")
        if self.max_queue < self.max_batch:
            raise EngineConfigError(f"max_queue={self.max_queue} must be >= max_batch={self.max_batch}")


class ServiceTimeModel:
    """Predicts a batch's service time as ``overhead + per_beat * n`` (least squares, decaying).

    Starts from a guess and refits from every measured batch, with older
    measurements weighing less (factor ``decay`` per batch).
    """

    def __init__(self, overhead_s: float = 0.002, per_beat_s: float = 0.0001, decay: float = 0.98) -> None:
        self.decay = decay
        # weighted sums for the fit; seeded with two virtual points of the guess
        self._s = self._sx = self._sy = self._sxx = self._sxy = 0.0
        for n in (1.0, 256.0):
            self._add(n, overhead_s + per_beat_s * n, 0.5)

    def _add(self, n: float, t: float, w: float) -> None:
        self._s += w
        self._sx += w * n
        self._sy += w * t
        self._sxx += w * n * n
        self._sxy += w * n * t

    def observe(self, n: int, seconds: float) -> None:
        for name in ("_s", "_sx", "_sy", "_sxx", "_sxy"):
            setattr(self, name, getattr(self, name) * self.decay)
        self._add(float(n), float(seconds), 1.0)

    def predict(self, n: int) -> float:
        det = self._s * self._sxx - self._sx**2
        if det <= 1e-12:
            return self._sy / self._s
        slope = (self._s * self._sxy - self._sx * self._sy) / det
        intercept = (self._sy - slope * self._sx) / self._s
        return max(0.0, intercept + max(slope, 0.0) * n)


@dataclass
class BatcherStats:
    beats_in: int = 0
    batches: int = 0
    beats_out: int = 0
    late: int = 0
    shed: Counter[str] = field(default_factory=Counter)
    batch_sizes: Counter[int] = field(default_factory=Counter)

    @property
    def shedding(self) -> bool:
        return bool(self.shed)


class Batcher(Generic[T]):
    """See the module docstring. ``priority(stream)`` says whether a stream has an active or suspected alarm."""

    def __init__(
        self,
        config: BatcherConfig | None = None,
        service: ServiceTimeModel | None = None,
        priority: Callable[[str], bool] | None = None,
    ) -> None:
        self.config = config or BatcherConfig()
        self.service = service or ServiceTimeModel()
        self._priority = priority or (lambda stream: False)
        self._urgent: deque[T] = deque()
        self._normal: deque[T] = deque()
        self.stats = BatcherStats()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._normal)

    def deadline(self, beat: T) -> float:
        return beat.ready_at + self.config.latency_budget_s

    def on_beat(self, beat: T) -> T | None:
        """Queue a beat; past ``max_queue`` the oldest beat of a stream without an alarm is
        shed: it is returned (and counted) so the caller can account for it."""
        self.stats.beats_in += 1
        (self._urgent if self._priority(beat.stream) else self._normal).append(beat)
        if len(self) > self.config.max_queue:
            return self._shed()
        return None

    def next_deadline(self) -> float | None:
        """When the next batch is due: -inf for a full batch, else the oldest deadline
        minus the predicted service time of the batch as it stands; None if empty."""
        if not len(self):
            return None
        if len(self) >= self.config.max_batch:
            return -math.inf
        oldest = min(self.deadline(q[0]) for q in (self._urgent, self._normal) if q)
        blocking = self.service.predict(self.config.max_batch)
        return oldest - self.service.predict(len(self)) - blocking - self.config.margin_s

    def on_deadline(self, now: float) -> list[T] | None:
        """The batch due at ``now`` (call when the backend is free), or None."""
        due = self.next_deadline()
        if due is None or now < due:
            return None
        return self._take(self.config.max_batch, now)

    def flush(self, now: float) -> list[list[T]]:
        """Everything queued, in batches (shutdown)."""
        out = []
        while len(self):
            out.append(self._take(self.config.max_batch, now))
        return out

    def on_done(self, batch_size: int, seconds: float) -> None:
        """Report a batch's measured service time."""
        self.service.observe(batch_size, seconds)

    def _take(self, n: int, now: float) -> list[T]:
        batch: list[T] = []
        for q in (self._urgent, self._normal):
            while q and len(batch) < n:
                batch.append(q.popleft())
        finish = now + self.service.predict(len(batch))
        self.stats.late += sum(1 for b in batch if self.deadline(b) < finish)
        self.stats.batches += 1
        self.stats.beats_out += len(batch)
        self.stats.batch_sizes[len(batch)] += 1
        return batch

    def _shed(self) -> T:
        """Drop the oldest beat of a stream without an alarm (an alarm stream's only if all are)."""
        q = self._normal if self._normal else self._urgent
        beat = q.popleft()
        self.stats.shed[beat.stream] += 1
        return beat
