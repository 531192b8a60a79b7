"""Per-beat latency histogram (fed on the hot path) and its immutable copy (read anywhere)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.errors import ConfigError

__all__ = ["LATENCY_BUCKETS", "LatencyHistogram", "LatencySnapshot"]

#: upper bounds (seconds) of the beat latency histogram; +Inf is implied
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


def _check_bounds(buckets: Sequence[float]) -> tuple[float, ...]:
    bounds = tuple(sorted(float(b) for b in buckets))
    if not bounds or any(not math.isfinite(b) or b <= 0 for b in bounds) or len(set(bounds)) != len(bounds):
        raise ConfigError(f"latency buckets must be distinct positive finite numbers, got {list(buckets)!r}")
    return bounds


@dataclass(frozen=True)
class LatencySnapshot:
    """The latency histogram as of one moment: safe to keep and to read from any thread.

    ``counts`` are per bucket (not cumulative), one more than ``bounds``: the
    last one is the ``+Inf`` bucket. Empty ``counts`` means no observation yet.
    """

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: tuple[int, ...] = ()
    sum: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", _check_bounds(self.bounds))
        counts = tuple(int(n) for n in self.counts) or (0,) * (len(self.bounds) + 1)
        if len(counts) != len(self.bounds) + 1 or any(n < 0 for n in counts):
            raise ValueError(f"{len(self.bounds) + 1} non-negative bucket counts expected, got {list(self.counts)!r}")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "sum", float(self.sum))

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``[(upper bound, cumulative count), ..., (inf, count)]``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """Estimate of the ``q`` quantile (0..1) in seconds; None before the first observation.

        Linear within the bucket that holds the rank (the lowest bucket starts
        at 0), like Prometheus' ``histogram_quantile``; a rank in the ``+Inf``
        bucket gives the highest finite bound.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within 0..1, got {q!r}")
        total = self.count
        if total == 0:
            return None
        rank = q * total
        below = 0
        lower = 0.0
        for upper, n in zip(self.bounds, self.counts, strict=False):
            if n and below + n >= rank:
                return lower + (upper - lower) * max(0.0, rank - below) / n
            below += n
            lower = upper
        return self.bounds[-1]  # the rank is in the +Inf bucket

    def percentiles_ms(self, qs: Iterable[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
        """``{"p50": ms, "p95": ms, "p99": ms}`` (None before the first observation), for status messages."""
        out: dict[str, float | None] = {}
        for q in qs:
            v = self.quantile(q)
            out[f"p{100 * q:g}"] = None if v is None else round(1000.0 * v, 3)
        return out


class LatencyHistogram:
    """Per-beat latency counts in fixed buckets: cheap enough to call for every beat.

    ``observe`` and :meth:`freeze` are meant for the thread that owns the
    histogram (the monitor's loop); other threads read the frozen copies.
    """

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._bounds = _check_bounds(buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket (not cumulative); the last one is +Inf
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one latency (seconds). NaN is ignored; a negative value (a clock step) counts as 0."""
        if not seconds >= 0.0:
            if seconds != seconds:
                return
            seconds = 0.0
        self._counts[bisect_left(self._bounds, seconds)] += 1  # bucket i holds bounds[i-1] < x <= bounds[i]
        self._sum += seconds

    @property
    def bounds(self) -> tuple[float, ...]:
        """Finite upper bounds of the buckets (``+Inf`` follows them)."""
        return self._bounds

    @property
    def count(self) -> int:
        return sum(self._counts)

    @property
    def sum(self) -> float:
        return self._sum

    def freeze(self) -> LatencySnapshot:
        """An immutable copy of the histogram as of now."""
        return LatencySnapshot(self._bounds, tuple(self._counts), self._sum)

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        """``([(upper bound, cumulative count), ..., (inf, count)], sum, count)`` as of now."""
        frozen = self.freeze()
        cumulative = frozen.cumulative()
        return cumulative, frozen.sum, cumulative[-1][1]

    def quantile(self, q: float) -> float | None:
        """See :meth:`LatencySnapshot.quantile`."""
        return self.freeze().quantile(q)

    def percentiles_ms(self, qs: Iterable[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
        """``{"p50": ms, "p95": ms, "p99": ms}`` (None before the first observation), for status messages."""
        return self.freeze().percentiles_ms(qs)
