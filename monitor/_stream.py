"""Per-stream processing (ring buffer, detection, beat assembly) and frame routing."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine import Beat
from monitor._detector import DetectorBank, DetectorConfig
from monitor._errors import ConfigError, FrameError, require_positive
from monitor._quality import QualityConfig, QualityTracker, TechnicalAlarm
from monitor._ring import RingBuffer, SequenceTracker
from monitor._wire import MAX_FRAME_SECONDS, DataFrame, EndOfStream, decode_frame

__all__ = ["Ingest", "StreamConfig", "StreamProcessor", "StreamStats"]


@dataclass(frozen=True)
class StreamConfig:
    """How every stream is processed."""

    lead: int = 0
    window_pre_s: float = 0.35
    window_post_s: float = 0.45
    rr_wait_s: float = 2.0  # longest wait for the next beat before sending without rr_next
    buffer_s: float = 30.0
    max_queued_s: float = 5.0  # detection runs at once when a stream has this much queued
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    max_streams: int = 4096
    keep_peaks: bool = False  # keep every R peak (for an end-of-run summary); off for live monitoring

    def __post_init__(self) -> None:
        if self.lead < 0:
            raise ConfigError(f"lead must be >= 0, got {self.lead!r}")
        require_positive(self, "window_pre_s", "window_post_s", "rr_wait_s", "buffer_s")
        needed = self.window_pre_s + self.window_post_s + self.rr_wait_s + self.max_queued_s + MAX_FRAME_SECONDS + 2
        if self.buffer_s < needed:
            raise ConfigError(f"buffer_s={self.buffer_s} is too short: windows, RR wait and queued input need {needed}")
        if self.max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {self.max_streams!r}")


@dataclass
class StreamStats:
    """Counters of one stream, shown in the live view and the summary."""

    frames: int = 0
    samples: int = 0
    nan_samples: int = 0
    beats: int = 0
    suppressed: int = 0  # beats found in unusable signal and not emitted
    rejected: Counter[str] = field(default_factory=Counter)
    first_arrival: float | None = None
    last_arrival: float | None = None
    ended: bool = False
    error: str | None = None


class StreamProcessor:
    """Everything the monitor keeps for one stream.

    Frames are checked, stored in the ring buffer and queued for detection;
    the owner runs detection for many streams at once (a :class:`DetectorBank`
    per sampling rate), hands the peaks back with :meth:`add_peaks`, and collects
    finished beats with :meth:`ready`.
    """

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
        self.queued: list[NDArray[np.float64]] = []  # samples waiting for detection
        self.queued_samples = 0
        self.max_queued = round(config.max_queued_s * self.fs)
        self.eos = False  # end-of-stream received, detector not yet flushed
        self.stats = StreamStats()
        self.quality = QualityTracker(self.stream, self.fs, origin=first.start, config=config.quality)
        self._pre = round(config.window_pre_s * self.fs)
        self._post = round(config.window_post_s * self.fs)
        self._rr_wait = round(config.rr_wait_s * self.fs)
        # index before which the detector can report no new peak (set by the owner)
        self.settled: Callable[[], int] = lambda: self.samples_end
        self._pending: deque[int] = deque()  # detected peaks not yet sent (absolute)
        self._last_sent: int | None = None
        self._rr_recent: deque[float] = deque(maxlen=8)
        self._rr_mean: float | None = None
        self.last_peak: int | None = None
        self.peaks: list[int] = []  # every R peak sent (only with config.keep_peaks)

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
    def on_frame(self, frame: DataFrame, now: float) -> None:
        if frame.fs != self.fs or frame.channels != self.channels:
            raise FrameError(
                "format_changed",
                f"stream {self.stream!r} changed fs/channels mid-stream "
                f"({self.fs} Hz {list(self.channels)} -> {frame.fs} Hz {list(frame.channels)})",
            )
        if self.eos:
            raise FrameError("after_eos", f"stream {self.stream!r} sent data after its end-of-stream")
        verdict = self.tracker.check(frame.seq, frame.start)
        if not verdict.accept:
            self.stats.rejected[verdict.reason] += 1
            return
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
        self.quality.process(x)
        self.queued.append(x)
        self.queued_samples += x.size

    def on_eos(self, eos: EndOfStream) -> None:
        if self.eos:
            raise FrameError("after_eos", f"stream {self.stream!r} sent a second end-of-stream")
        if eos.start > self.samples_end or eos.seq > self.tracker.next_seq:
            # Frames before the eos went missing: count it, end anyway.
            self.stats.rejected["eos_early"] += 1
        self.eos = True

    def take_queued(self) -> NDArray[np.float64]:
        x = self.queued[0] if len(self.queued) == 1 else np.concatenate(self.queued)
        self.queued = []
        self.queued_samples = 0
        return x

    def add_peaks(self, peaks: NDArray[np.int64]) -> None:
        """R peaks from the detector, in detector indexing (0 = first sample)."""
        self._pending.extend((peaks + self.origin).tolist())

    # --------------------------------------------------------------- output
    def ready(self, now: float, final: bool = False) -> list[Beat]:
        """Beats whose window and next R peak have arrived (all of them if ``final``)."""
        out: list[Beat] = []
        end = self.ring.end
        pending = self._pending
        while pending:
            peak = pending[0]
            nxt = pending[1] if len(pending) > 1 else None
            if not final:
                if end < peak + self._post or self.quality.known_until <= peak:
                    break
                if nxt is None and self.settled() <= peak + self._rr_wait:
                    break  # the next peak may still come: wait until it cannot
            pending.popleft()
            if not self.quality.usable(peak):
                self.stats.suppressed += 1
                continue
            out.append(self._make_beat(peak, nxt, now))
        return out

    def _make_beat(self, peak: int, nxt: int | None, now: float) -> Beat:
        fs = self.fs
        rr_prev = None if self._last_sent is None else (peak - self._last_sent) / fs
        rr_next = None if nxt is None or nxt - peak > self._rr_wait else (nxt - peak) / fs
        # context from the beats before this one, so a premature beat stands out
        rr_local = sum(self._rr_recent) / len(self._rr_recent) if self._rr_recent else None
        rr_mean = self._rr_mean
        if rr_prev is not None:
            self._rr_recent.append(rr_prev)
            a = 1.0 / 64.0
            self._rr_mean = rr_prev if self._rr_mean is None else (1 - a) * self._rr_mean + a * rr_prev
        self._last_sent = peak
        self.last_peak = peak
        if self.config.keep_peaks:
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
        return Beat(
            stream=self.stream,
            sample=peak,
            fs=fs,
            rr_prev=rr_prev,
            rr_next=rr_next,
            rr_local=rr_local,
            rr_mean=rr_mean,
            window=window.astype(np.float32, copy=False),
            window_start=start,
            ready_at=now,
        )


class Ingest:
    """Routes raw messages to their stream and runs detection for all streams at once.

    ``on_message(parts)`` checks and queues a message; ``step()`` runs the
    detector over everything queued since the last step (one
    :class:`DetectorBank` per sampling rate, streams with equal-length input
    filtered together) and returns the beats that became ready. ``feed(parts)``
    does both for one message.

    Bad input is counted, never raised: ``rejected`` counts messages that could
    not be attributed to a stream, by reason; per-stream rejections live in each
    stream's stats. A stream whose processing fails is marked with
    ``stats.error`` and stops accepting frames; every other stream carries on.
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
        self.banks: dict[float, DetectorBank[str]] = {}
        self._dirty: dict[str, StreamProcessor] = {}  # streams with queued input or an eos
        self._ready: list[Beat] = []  # beats found by a step that on_message forced
        self.technical: list[TechnicalAlarm] = []  # alarm onsets/ends not yet taken by the owner
        self.ended: list[StreamProcessor] = []  # streams ended since the owner last took this list
        self._on_new_stream = on_new_stream

    def feed(self, parts: Sequence[bytes]) -> list[Beat]:
        self.on_message(parts)
        return self.step()

    def on_message(self, parts: Sequence[bytes]) -> None:
        self.messages += 1
        now = self.clock()
        try:
            frame = decode_frame(parts)
        except FrameError as exc:
            self.rejected[exc.reason] += 1
            return
        proc = self.streams.get(frame.stream) or self._new_stream(frame)
        if proc is None:
            return
        try:
            if proc.stats.error is not None:
                proc.stats.rejected["stream_failed"] += 1
                return
            if isinstance(frame, EndOfStream):
                proc.on_eos(frame)
            else:
                proc.on_frame(frame, now)
            self._dirty[proc.stream] = proc
            if proc.queued_samples >= proc.max_queued:
                # Keep queued input well inside the ring buffer.
                beats = self.step()  # takes self._ready with it
                self._ready = beats
        except FrameError as exc:
            proc.stats.rejected[exc.reason] += 1

    def _new_stream(self, frame: DataFrame | EndOfStream) -> StreamProcessor | None:
        if isinstance(frame, EndOfStream):
            self.rejected["eos_unknown_stream"] += 1
            return None
        if len(self.streams) >= self.config.max_streams:
            self.rejected["too_many_streams"] += 1
            return None
        try:
            bank = self.banks.get(frame.fs)
            if bank is None:
                bank = DetectorBank[str](frame.fs, self.config.detector, capacity=64)
            proc = StreamProcessor(frame, self.config)
        except (ConfigError, FrameError) as exc:  # e.g. a rate too low to find QRS complexes
            self.rejected[exc.reason if isinstance(exc, FrameError) else "unsupported"] += 1
            return None
        self.banks[frame.fs] = bank
        bank.add(proc.stream)
        sid = proc.stream
        proc.settled = lambda: bank.settled(sid) + proc.origin
        self.streams[frame.stream] = proc
        if self._on_new_stream is not None:
            self._on_new_stream(proc)
        return proc

    def step(self) -> list[Beat]:
        """Detect on everything queued; return the beats now ready, stream by stream."""
        out, self._ready = self._ready, []
        if not self._dirty:
            return out
        dirty = self._dirty
        self._dirty = {}
        now = self.clock()
        by_bank: dict[float, dict[str, NDArray[np.float64]]] = {}
        for sid, proc in dirty.items():
            if proc.queued and proc.stats.error is None:
                by_bank.setdefault(proc.fs, {})[sid] = proc.take_queued()
        for fs, chunks in by_bank.items():
            bank = self.banks[fs]
            peaks = bank.process(chunks)
            for sid in chunks:
                if sid in peaks:
                    dirty[sid].add_peaks(peaks[sid])
            self._collect_failures(bank)
        for sid, proc in dirty.items():
            if proc.stats.error is not None:
                continue
            final = False
            if proc.eos and not proc.stats.ended:
                bank = self.banks[proc.fs]
                proc.add_peaks(bank.flush(sid))
                self._collect_failures(bank)
                if proc.stats.error is not None:
                    continue
                bank.remove(sid)
                proc.quality.flush()
                proc.stats.ended = final = True
                self.ended.append(proc)
            out.extend(proc.ready(now, final=final))
            if proc.quality.events:
                self.technical.extend(proc.quality.events)
                proc.quality.events.clear()
        return out

    def _collect_failures(self, bank: DetectorBank[str]) -> None:
        for sid, exc in bank.failed.items():
            proc = self.streams[sid]
            proc.stats.error = f"{type(exc).__name__}: {exc}"
            proc.stats.rejected["internal_error"] += 1
        bank.failed.clear()

    def flush_all(self) -> list[Beat]:
        """Shutdown: end every stream still open, returning its last beats."""
        for proc in self.streams.values():
            if not proc.eos and proc.stats.error is None:
                proc.eos = True
                self._dirty[proc.stream] = proc
        return self.step()

    def all_ended(self, expected: set[str]) -> bool:
        return all(s in self.streams and self.streams[s].stats.ended for s in expected)
