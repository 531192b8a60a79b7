"""One immutable picture of a running monitor: what the status topic and the metrics both read.

The monitor's loop thread builds a :class:`StatusSnapshot` from its own
counters (the only thread that mutates them) and publishes it by swapping one
reference; readers in other threads (the Prometheus collector) call
:meth:`SnapshotSource.snapshot` and never touch the pipeline itself. Every
mapping handed to a snapshot is copied, so a snapshot never changes after it
is built.

Monitor-wide sums over streams (frames, samples, beats, ...) are derived from
:attr:`StatusSnapshot.streams` plus :attr:`StatusSnapshot.retired`, the figures
of the streams the monitor has forgotten (added up by :func:`retire`): every
cumulative figure only grows, whatever streams end or are forgotten (counter
semantics), while the per-stream rows and the gauges show what is current.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from monitor.observe._latency import LatencySnapshot
from monitor.vocabulary import PRIORITIES

__all__ = [
    "DEGRADED",
    "OK",
    "STREAM_STATES",
    "SnapshotSource",
    "StatusSnapshot",
    "StreamStatus",
    "health_of",
    "retire",
]

OK = "ok"
DEGRADED = "degraded"
#: what a stream can be: receiving, ended (end-of-stream seen), failed (its processing raised)
STREAM_STATES: tuple[str, ...] = ("active", "ended", "failed")

K = TypeVar("K")


def _frozen(mapping: Mapping[K, int]) -> Mapping[K, int]:
    """A read-only copy: later changes to ``mapping`` (a live counter) do not show through."""
    return MappingProxyType(dict(mapping))


def health_of(problems: Sequence[str], shed: int) -> str:
    """The one health rule: ``degraded`` while there is a problem (a stream failed, the engine
    is down) or beats were shed, else ``ok``."""
    return DEGRADED if problems or shed else OK


@dataclass(frozen=True)
class StreamStatus:
    """One stream's figures as of a snapshot."""

    stream: str
    fs: float = 0.0
    ended: bool = False  # end-of-stream seen and processed
    error: str | None = None  # why its processing failed; None while it works
    frames: int = 0  # data frames accepted
    frames_missing: int = 0  # frames never received (sequence gaps)
    samples: int = 0  # samples received in accepted frames
    samples_missing: int = 0  # samples lost in gaps, filled as missing
    samples_nan: int = 0  # samples treated as missing (NaN, invalid, out of range, gaps)
    rejected: Mapping[str, int] = field(default_factory=dict)  # messages rejected, by reason
    beats: int = 0  # beats sent for classification
    suppressed: int = 0  # detections in unusable signal, not sent
    low_amplitude: int = 0  # detections below the QRS amplitude floor, not sent
    restarts: int = 0  # device restarts (new segments)
    reboots: int = 0  # of which: the device sent a new boot id
    long_gaps: int = 0  # gaps over the longest filled gap within one boot (a new segment, no restart)
    conflicts: int = 0  # episodes of two devices under this stream id
    shed: int = 0  # beats shed under overload
    alarms_active: int = 0  # alarms active now on this stream
    since_data_s: float | None = None  # seconds since its last accepted data; None before any
    duration_s: float = 0.0  # seconds of signal received (stream time, gaps included)
    quality: str = "clean"  # the signal quality of its latest judged block
    quality_alarms: tuple[str, ...] = ()  # its technical alarms from signal quality, active now
    since_beat_s: float = 0.0  # stream seconds since its last R peak (since its start before any)
    lead: str = ""  # the name of the channel monitored (chosen on the stream's first frame)
    lead_fallback: bool = False  # none of the preferred leads was there: channel 0 is monitored
    boot: str | None = None  # the device's current run (its boot id); None for a device without one
    segment: str = ""  # the label of the stream's current segment ("" for its first)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejected", _frozen(self.rejected))
        object.__setattr__(self, "quality_alarms", tuple(self.quality_alarms))

    @property
    def state(self) -> str:
        """``failed`` once its processing raised, else ``ended`` after its end-of-stream, else ``active``."""
        if self.error is not None:
            return "failed"
        return "ended" if self.ended else "active"


#: the cumulative figures of a :class:`StreamStatus` (besides ``rejected``) that :func:`retire` adds up;
#: beats shed are counted by stream in :attr:`StatusSnapshot.shed`, forgotten streams included
CUMULATIVE: tuple[str, ...] = (
    "frames",
    "frames_missing",
    "samples",
    "samples_missing",
    "samples_nan",
    "beats",
    "suppressed",
    "low_amplitude",
    "restarts",
    "reboots",
    "long_gaps",
    "conflicts",
)


def retire(total: StreamStatus, gone: StreamStatus) -> StreamStatus:
    """``total`` with the cumulative figures of ``gone`` (a stream being forgotten) added; gauges stay empty."""
    rejected = dict(total.rejected)
    for reason, n in gone.rejected.items():
        rejected[reason] = rejected.get(reason, 0) + n
    sums = {name: getattr(total, name) + getattr(gone, name) for name in CUMULATIVE}
    return StreamStatus(total.stream, rejected=rejected, **sums)


@dataclass(frozen=True)
class StatusSnapshot:
    """Monitor-wide figures as of one moment, with one :class:`StreamStatus` per known stream."""

    monitor: str = "unknown"  # the monitor's id
    engine: str = "unknown"  # the classification engine's name
    wall_time: float = field(default_factory=time.time)  # Unix time the snapshot was taken
    uptime_s: float = 0.0  # seconds since the monitor started (its own clock)
    messages: int = 0  # messages received on the ingest socket
    rejected: Mapping[str, int] = field(default_factory=dict)  # rejected before reaching a stream, by reason
    labelled: int = 0  # beats labelled (shed ones included, as Q)
    late: int = 0  # beats labelled after their latency budget
    batches: int = 0  # batches classified
    batch_sizes: Mapping[int, int] = field(default_factory=dict)  # batch size -> how many batches
    shed: Mapping[str, int] = field(default_factory=dict)  # beats shed, by stream (forgotten streams included)
    alarm_onsets: Mapping[str, int] = field(default_factory=dict)  # alarm onsets, by kind
    alarms_active: Mapping[str, int] = field(default_factory=dict)  # alarms active now, by priority
    latency: LatencySnapshot = field(default_factory=LatencySnapshot)  # beat ready -> label delivered
    bus_sent: int = 0  # alert bus messages published
    bus_dropped: int = 0  # alert bus messages dropped (a subscriber's queue was full)
    bus_subscriptions: int = 0  # alert bus subscriptions received
    engine_problem: str | None = None  # the engine's last failure while it is down; None while it works
    engine_errors: int = 0  # engine failures so far
    streams: tuple[StreamStatus, ...] = ()
    retired: StreamStatus = field(default_factory=lambda: StreamStatus("retired"))  # forgotten streams, summed
    streams_forgotten: int = 0  # ended streams forgotten so far

    def __post_init__(self) -> None:
        for name in ("rejected", "batch_sizes", "shed", "alarm_onsets", "alarms_active"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "streams", tuple(self.streams))

    # ------------------------------------------------------------ sums over streams (forgotten ones included)
    def _sum(self, name: str) -> int:
        return getattr(self.retired, name) + sum(getattr(s, name) for s in self.streams)

    @property
    def frames(self) -> int:
        return self._sum("frames")

    @property
    def frames_missing(self) -> int:
        return self._sum("frames_missing")

    @property
    def samples(self) -> int:
        return self._sum("samples")

    @property
    def samples_missing(self) -> int:
        return self._sum("samples_missing")

    @property
    def samples_nan(self) -> int:
        return self._sum("samples_nan")

    @property
    def beats(self) -> int:
        return self._sum("beats")

    @property
    def suppressed(self) -> int:
        return self._sum("suppressed")

    @property
    def low_amplitude(self) -> int:
        return self._sum("low_amplitude")

    @property
    def device_restarts(self) -> int:
        return self._sum("restarts")

    @property
    def device_reboots(self) -> int:
        return self._sum("reboots")

    @property
    def long_gaps(self) -> int:
        return self._sum("long_gaps")

    @property
    def stream_conflicts(self) -> int:
        return self._sum("conflicts")

    def streams_by_state(self) -> dict[str, int]:
        """How many streams are ``active`` / ``ended`` / ``failed`` (every state present)."""
        out = dict.fromkeys(STREAM_STATES, 0)
        for s in self.streams:
            out[s.state] += 1
        return out

    def rejected_by_reason(self) -> dict[str, int]:
        """Rejections by reason: the monitor's own, then every stream's (forgotten ones included), added up."""
        out = dict(self.rejected)
        for s in (self.retired, *self.streams):
            for reason, n in s.rejected.items():
                out[reason] = out.get(reason, 0) + n
        return out

    # ------------------------------------------------------------ monitor-wide
    @property
    def shed_total(self) -> int:
        return sum(self.shed.values())

    def alarms_active_by_priority(self) -> dict[str, int]:
        """Active alarms by priority, every priority present (``high``, ``medium``, ``low``)."""
        out: dict[str, int] = dict.fromkeys(PRIORITIES, 0)
        for priority, n in self.alarms_active.items():
            out[priority] = out.get(priority, 0) + n
        return out

    @property
    def alarms_active_count(self) -> int:
        return sum(self.alarms_active.values())

    @property
    def engine_down(self) -> bool:
        return self.engine_problem is not None

    @property
    def problems(self) -> list[str]:
        """What makes the monitor degraded, one line each (shedding aside)."""
        out = [f"stream {s.stream} failed: {s.error}" for s in self.streams if s.error is not None]
        if self.engine_problem is not None:
            out.append(f"engine failed ({self.engine_errors} times): {self.engine_problem}")
        return out

    @property
    def health(self) -> str:
        """``ok`` or ``degraded``, by :func:`health_of`."""
        return health_of(self.problems, self.shed_total)

    @property
    def start_time(self) -> float:
        """Unix time the monitor started."""
        return self.wall_time - self.uptime_s

    def to_status(self) -> dict[str, Any]:
        """The body of the alert bus' status message."""
        problems = self.problems
        shed = self.shed_total
        return {
            "uptime_s": round(self.uptime_s, 3),
            "streams": len(self.streams),
            "streams_active": sum(1 for s in self.streams if not s.ended),
            "messages": self.messages,
            "frames": self.frames,
            "samples": self.samples,
            "rejected": self.rejected_by_reason(),
            "beats": self.beats,
            "labelled": self.labelled,
            "device_restarts": self.device_restarts,
            "device_reboots": self.device_reboots,
            "stream_conflicts": self.stream_conflicts,
            "samples_missing": self.samples_missing,
            "late": self.late,
            "shed": shed,
            "alarms_active": self.alarms_active_count,
            "latency_ms": self.latency.percentiles_ms(),
            "engine": self.engine,
            "health": health_of(problems, shed),
            "problems": problems,
        }


class SnapshotSource(Protocol):
    """Anything that hands out its latest :class:`StatusSnapshot` (a running Monitor)."""

    def snapshot(self) -> StatusSnapshot: ...
