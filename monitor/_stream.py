"""Per-stream processing (ring buffer, detection, beat assembly) and frame routing."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine import Beat
from monitor._detector import DetectorConfig, StreamingDetector
from monitor._errors import ConfigError, FrameError
from monitor._ring import RingBuffer, SequenceTracker
from monitor._wire import DataFrame, EndOfStream, decode_frame

__all__ = ["Ingest", "StreamConfig", "StreamProcessor", "StreamStats"]


@dataclass(frozen=True)
class StreamConfig:
    """How every stream is processed."""

    lead: int = 0
    window_pre_s: float = 0.35
    window_post_s: float = 0.45
    rr_wait_s: float = 2.0  # longest wait for the next beat before sending without rr_next
    buffer_s: float = 20.0
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    max_streams: int = 4096

    def __post_init__(self) -> None:
        if self.lead < 0:
            raise ConfigError(f"lead must be >= 0, got {self.lead!r}")
        for name in ("window_pre_s", "window_post_s", "rr_wait_s", "buffer_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if self.buffer_s < self.window_pre_s + self.window_post_s + self.rr_wait_s + 2:
            raise ConfigError(f"buffer_s={self.buffer_s} is too short for the beat window and RR wait")
        if self.max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {self.max_streams!r}")


@dataclass
class StreamStats:
    """Counters of one stream, shown in the live view and the summary."""

    frames: int = 0
    samples: int = 0
    nan_samples: int = 0
    beats: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_arrival: float | None = None
    last_arrival: float | None = None
    ended: bool = False
    error: str | None = None


class StreamProcessor:
    """Everything the monitor keeps for one stream."""

    def __init__(self, first: DataFrame, config: StreamConfig) -> None:
        if config.lead >= len(first.channels):
            raise FrameError(
                "lead", f"stream {first.stream!r} has {len(first.channels)} channel(s); lead {config.lead} asked"
            )
        self.stream = first.stream
        self.fs = first.fs
        self.channels = first.channels
        self.units = first.units
        self.config = config
        self.lead = config.lead
        self.tracker = SequenceTracker(next_seq=first.seq, next_sample=first.start)
        self.origin = first.start  # first sample index seen
        self.ring = RingBuffer(round(config.buffer_s * self.fs), channels=1)
        self.ring.end = first.start
        self.detector = StreamingDetector(self.fs, config.detector)
        self.stats = StreamStats()
        self._pre = round(config.window_pre_s * self.fs)
        self._post = round(config.window_post_s * self.fs)
        self._rr_wait = round(config.rr_wait_s * self.fs)
        self._pending: deque[int] = deque()  # detected peaks not yet sent (absolute)
        self._last_sent: int | None = None
        self._rr_recent: deque[float] = deque(maxlen=8)
        self._rr_mean: float | None = None
        self.peaks: list[int] = []  # every R peak sent, absolute sample index

    # ----------------------------------------------------------- properties
    @property
    def heart_rate(self) -> float | None:
        """Beats per minute from the mean of the last 8 RR intervals."""
        if not self._rr_recent:
            return None
        return 60.0 / (sum(self._rr_recent) / len(self._rr_recent))

    @property
    def samples_end(self) -> int:
        return self.tracker.next_sample

    # ---------------------------------------------------------------- input
    def on_frame(self, frame: DataFrame, now: float) -> list[Beat]:
        if frame.fs != self.fs or frame.channels != self.channels:
            raise FrameError(
                "format_changed",
                f"stream {self.stream!r} changed fs/channels mid-stream "
                f"({self.fs} Hz {list(self.channels)} -> {frame.fs} Hz {list(frame.channels)})",
            )
        if self.stats.ended:
            raise FrameError("after_eos", f"stream {self.stream!r} sent data after its end-of-stream")
        verdict = self.tracker.check(frame.seq, frame.start)
        if not verdict.accept:
            self.stats.rejected[verdict.reason] += 1
            return []
        x = frame.millivolts(self.lead)
        if verdict.gap:
            # Missing samples are filled with NaN so indices stay aligned; the
            # detector holds the last value across them.
            gap = np.full(verdict.gap, np.nan)
            x = np.concatenate((gap, x))
        self.stats.frames += 1
        self.stats.samples += frame.n
        self.stats.nan_samples += int(np.count_nonzero(~np.isfinite(x)))
        if self.stats.first_arrival is None:
            self.stats.first_arrival = now
        self.stats.last_arrival = now
        self.tracker.advance(x.size)
        self.ring.append(x.astype(np.float32))
        peaks = self.detector.process(x)
        self._pending.extend((peaks + self.origin).tolist())
        return self._ready(now, final=False)

    def on_eos(self, eos: EndOfStream, now: float) -> list[Beat]:
        if self.stats.ended:
            raise FrameError("after_eos", f"stream {self.stream!r} sent a second end-of-stream")
        if eos.start < self.samples_end or eos.seq < self.tracker.next_seq:
            # Frames before the eos went missing: count it, end anyway.
            self.stats.rejected["eos_early"] += 1
        self.stats.ended = True
        self._pending.extend((self.detector.flush() + self.origin).tolist())
        return self._ready(now, final=True)

    # --------------------------------------------------------------- output
    def _ready(self, now: float, final: bool) -> list[Beat]:
        out: list[Beat] = []
        end = self.ring.end
        pending = self._pending
        while pending:
            peak = pending[0]
            nxt = pending[1] if len(pending) > 1 else None
            if not final:
                if end < peak + self._post:
                    break
                if nxt is None and end < peak + self._rr_wait:
                    break
            pending.popleft()
            out.append(self._make_beat(peak, nxt, now))
        return out

    def _make_beat(self, peak: int, nxt: int | None, now: float) -> Beat:
        fs = self.fs
        rr_prev = None if self._last_sent is None else (peak - self._last_sent) / fs
        rr_next = None if nxt is None or nxt - peak > self._rr_wait else (nxt - peak) / fs
        if rr_prev is not None:
            self._rr_recent.append(rr_prev)
            a = 1.0 / 64.0
            self._rr_mean = rr_prev if self._rr_mean is None else (1 - a) * self._rr_mean + a * rr_prev
        self._last_sent = peak
        self.peaks.append(peak)
        self.stats.beats += 1
        start = peak - self._pre
        stop = peak + self._post
        lo = max(start, self.ring.start)
        hi = min(stop, self.ring.end)
        window = self.ring.read(lo, hi)[:, 0]
        if lo > start or hi < stop:  # stream start or end: pad with edge values
            window = np.pad(window, (lo - start, stop - hi), mode="edge")
        window = np.nan_to_num(window, nan=0.0)
        rr_local = sum(self._rr_recent) / len(self._rr_recent) if self._rr_recent else None
        return Beat(
            stream=self.stream,
            sample=peak,
            fs=fs,
            rr_prev=rr_prev,
            rr_next=rr_next,
            rr_local=rr_local,
            rr_mean=self._rr_mean,
            window=window.astype(np.float32, copy=False),
            window_start=start,
            ready_at=now,
        )


class Ingest:
    """Routes raw messages to their stream; bad input is counted, never raised.

    ``rejected`` counts frames that could not be attributed to a stream or were
    malformed, by reason; per-stream rejections live in each stream's stats.
    A stream whose processing fails is marked with ``stats.error`` and stops
    accepting frames; every other stream carries on.
    """

    def __init__(
        self,
        config: StreamConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_new_stream: Callable[[StreamProcessor], None] | None = None,
    ) -> None:
        self.config = config or StreamConfig()
        self.clock = clock
        self.streams: dict[str, StreamProcessor] = {}
        self.rejected: Counter[str] = Counter()
        self.messages = 0
        self._on_new_stream = on_new_stream

    def on_message(self, parts: Sequence[bytes]) -> list[Beat]:
        self.messages += 1
        now = self.clock()
        try:
            frame = decode_frame(parts)
        except FrameError as exc:
            self.rejected[exc.reason] += 1
            return []
        proc = self.streams.get(frame.stream)
        try:
            if proc is None:
                if isinstance(frame, EndOfStream):
                    self.rejected["eos_unknown_stream"] += 1
                    return []
                if len(self.streams) >= self.config.max_streams:
                    self.rejected["too_many_streams"] += 1
                    return []
                try:
                    proc = StreamProcessor(frame, self.config)
                except ConfigError as exc:  # e.g. a sampling rate too low to detect QRS
                    raise FrameError("unsupported", str(exc)) from None
                self.streams[frame.stream] = proc
                if self._on_new_stream is not None:
                    self._on_new_stream(proc)
            if proc.stats.error is not None:
                proc.stats.rejected["stream_failed"] += 1
                return []
            if isinstance(frame, EndOfStream):
                return proc.on_eos(frame, now)
            return proc.on_frame(frame, now)
        except FrameError as exc:
            if proc is None:
                self.rejected[exc.reason] += 1
            else:
                proc.stats.rejected[exc.reason] += 1
            return []
        except Exception as exc:  # a bug in one stream must not stop the others
            if proc is None:
                self.rejected["internal_error"] += 1
                raise
            proc.stats.error = f"{type(exc).__name__}: {exc}"
            proc.stats.rejected["internal_error"] += 1
            return []

    def flush_all(self) -> list[Beat]:
        """Shutdown: end every stream still open, returning its last beats."""
        out: list[Beat] = []
        for proc in self.streams.values():
            if not proc.stats.ended and proc.stats.error is None:
                out.extend(proc.on_eos(EndOfStream(proc.stream, proc.tracker.next_seq, proc.samples_end), self.clock()))
        return out

    def all_ended(self, expected: set[str]) -> bool:
        return all(s in self.streams and self.streams[s].stats.ended for s in expected)
