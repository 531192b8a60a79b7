"""Per-stream processing (ring buffer, detection, beat assembly) and frame routing.

Every message is untrusted input. Each one is counted exactly once: accepted by
its stream (``stats.frames``, or ``stats.eos_received`` for its end-of-stream),
rejected by its stream under a reason (``stats.rejected[reason]``), held by its
stream until a rule decides (``stats.held``, at most ``restart_frames``), or
rejected before it reaches a stream (``Ingest.rejected[reason]``), so
:meth:`Ingest.unaccounted` is always 0. No exception escapes
:meth:`Ingest.on_message` or :meth:`Ingest.step`, and one stream's input never
stops another stream. The rules, with their counter keys:

* **Malformed messages** (see :mod:`monitor.protocol._wire`): ``Ingest.rejected[reason]``;
  also ``eos_unknown_stream``, ``too_many_streams``, ``unsupported`` (a rate too
  low to find QRS complexes) and ``lead`` (fewer channels than the monitored lead).
* **Missing samples**: NaN and infinite values, ``invalid`` raw values, values
  beyond :data:`MAX_ABS_MV` (``stats.out_of_range``) and gaps are NaN, counted in
  ``stats.nan_samples``; the detector holds the last value across them (never a
  beat), the quality tracker judges them (``signal lost``).
* **Gaps**: a frame ahead of the next expected sequence number and sample, by at
  most ``max_gap_s``, is accepted; the missing samples are counted
  (``tracker.frames_missing``, ``tracker.samples_missing``) and filled with NaN.
* **Frames from the past**: ``reordered`` (a missed frame arriving late),
  ``duplicate``, ``overlap`` (samples already held): dropped, never inserted.
* **Format change** (``fs`` or ``channels`` differ from the stream's first frame):
  the frame is rejected (``format_changed``) and a technical alarm ``format
  changed`` is raised until a frame in the stream's format is accepted again or
  the stream ends. Samples are never reinterpreted at another rate: a device
  that changes its format must use a new stream id.
* **Device restart**: frames that do not fit the stream's sequence (an older
  sequence number that repeats no recent frame, samples already held, or more
  than ``max_gap_s`` ahead) but continue each other are held. When
  ``restart_frames`` of them arrive in a row with no frame of the current
  sequence in between, the device has restarted (or is back after a long
  outage): the current segment's beats are finished as at an end of stream,
  detection and RR context start afresh on the new sequence (beat windows never
  mix the two segments) and the held frames are accepted (``stats.restarts``).
  Stream sample indices keep increasing without a hole: the new segment starts
  at the last sample received (``offset`` maps device indices to the stream's);
  the signal quality judgement simply continues.
* **Two devices on one stream id**: when such a run of frames reaches
  ``restart_frames`` frames while the current sequence keeps being accepted in
  between (at least twice), the stream has a conflict (``stats.conflicts``, a
  technical alarm ``stream conflict``): the current sequence is kept and the
  other's frames are rejected (``stream_conflict``). If the current sequence
  then falls silent while the other continues (``restart_frames`` frames in a
  row), the other takes over as a restart. Held frames that turn out to be
  neither are rejected under their own reason (``duplicate``, ``overlap``,
  ``jump``). Two devices sending identical sequence numbers and sample indices
  cannot be told apart by the wire format: their frames count as ``duplicate``.
* **End of stream**: accepted unless it goes back (``seq`` or ``start`` before
  the next expected ones: ``eos_mismatch``); one ahead of the data (frames
  lost) is counted in ``stats.eos_early``. Data or a second end-of-stream after
  it: ``after_eos``.
* **Clocks**: the sender's ``sent`` time is never used by ingest; the monitor's
  own clock only sets arrival times (``stats.first_arrival``/``last_arrival``)
  and ``Beat.ready_at`` (latency), so clock jumps change nothing else.
* **Internal failures**: an exception inside one stream's processing (a bug)
  marks that stream failed (``stats.error``; the message is counted as
  ``internal_error``, later ones as ``stream_failed``); other streams carry on.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine import Beat
from monitor.detect import DetectorBank, DetectorConfig, QualityConfig, QualityTracker, TechnicalAlarm
from monitor.errors import ConfigError, FrameError, require_positive
from monitor.ingest._ring import RingBuffer, SequenceTracker
from monitor.protocol._wire import _UNIT_SCALE_TO_MV, MAX_FRAME_SECONDS, DataFrame, EndOfStream, decode_frame

__all__ = ["MAX_ABS_MV", "Ingest", "StreamConfig", "StreamProcessor", "StreamStats"]

MAX_ABS_MV = 1000.0  # larger values are not a body-surface ECG: treated as missing samples
FORMAT_ALARM = "format changed"
CONFLICT_ALARM = "stream conflict"


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
    # detections smaller than this (peak-to-peak within 50 ms of the R peak) are noise, not QRS complexes:
    # IEC 60601-2-27 asks that QRS complexes of 0.15 mV or less are not counted (asystole must read as such)
    min_qrs_mv: float = 0.15
    max_gap_s: float = 60.0  # longest gap filled with missing samples; beyond it a frame starts a new segment
    restart_frames: int = 3  # consecutive frames of a new sequence that make a device restart

    def __post_init__(self) -> None:
        if self.lead < 0:
            raise ConfigError(f"lead must be >= 0, got {self.lead!r}")
        require_positive(self, "window_pre_s", "window_post_s", "rr_wait_s", "buffer_s", "max_queued_s", "max_gap_s")
        needed = self.window_pre_s + self.window_post_s + self.rr_wait_s + self.max_queued_s + MAX_FRAME_SECONDS + 2
        if self.buffer_s < needed:
            raise ConfigError(f"buffer_s={self.buffer_s} is too short: windows, RR wait and queued input need {needed}")
        if self.max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {self.max_streams!r}")
        if self.restart_frames < 2:
            raise ConfigError(f"restart_frames must be >= 2, got {self.restart_frames!r}")


@dataclass
class StreamStats:
    """Counters of one stream, shown in the live view and the summary."""

    frames: int = 0  # data frames accepted
    samples: int = 0
    nan_samples: int = 0  # missing samples, gaps included
    out_of_range: int = 0  # samples beyond MAX_ABS_MV (counted in nan_samples too)
    beats: int = 0
    suppressed: int = 0  # beats found in unusable signal and not emitted
    low_amplitude: int = 0  # detections below min_qrs_mv (noise, e.g. during asystole), not emitted
    rejected: Counter[str] = field(default_factory=Counter)
    messages: int = 0  # messages routed to this stream
    eos_received: int = 0  # end-of-stream messages accepted (0 or 1)
    held: int = 0  # frames held until the restart/conflict rule decides
    restarts: int = 0  # device restarts (new segments)
    conflicts: int = 0  # episodes of a second device sending under this stream id
    eos_early: int = 0  # end-of-stream ahead of the data received
    first_arrival: float | None = None
    last_arrival: float | None = None
    ended: bool = False
    error: str | None = None

    def accounted(self) -> int:
        """Messages of this stream with a fate; equals ``messages`` (see the module docstring)."""
        return self.frames + self.eos_received + sum(self.rejected.values()) + self.held


@dataclass
class _Held:
    frame: DataFrame
    x: NDArray[np.float64]  # the monitored lead in mV
    reason: str  # the rejection reason if it turns out to be neither restart nor conflict
    clean: bool = False  # x is known to be finite and within MAX_ABS_MV (see StreamProcessor._convert)


@dataclass
class _Run:
    """Frames that do not fit the stream's sequence but continue each other."""

    next_seq: int
    next_start: int
    main_at_last: int  # the stream's next sample (device indexing) when the run last grew
    length: int = 0
    interleaved: int = 0  # times the current sequence was accepted between the run's frames
    conflict: bool = False
    held: list[_Held] = field(default_factory=list)  # frames since the current sequence was last accepted

    def continues(self, frame: DataFrame, max_gap: int) -> bool:
        return frame.seq >= self.next_seq and 0 <= frame.start - self.next_start <= max_gap

    def add(self, item: _Held) -> None:
        self.held.append(item)
        self.length += 1
        self.next_seq = item.frame.seq + 1
        self.next_start = item.frame.start + item.frame.n


_SLOW = None  # conversion plan: the general path (DataFrame.millivolts and per-sample checks)
_UNKNOWN: Any = object()  # no plan made yet for a format
_INT_RANGE = {"<i2": (-(2**15), 2**15 - 1), "<i4": (-(2**31), 2**31 - 1)}
_Plan = tuple[float, float, float, bytes | None]


def _plan(dtype: str, gain: float, baseline: float, units: str, invalid: int | None) -> _Plan | None:
    """``(gain, baseline, mV scale, invalid value's bytes)`` when every raw value of ``dtype``
    maps to a finite value within :data:`MAX_ABS_MV`; None (the general path) otherwise."""
    scale = _UNIT_SCALE_TO_MV.get(units.strip().lower())
    limits = _INT_RANGE.get(dtype)
    if scale is None or limits is None:
        return _SLOW
    bound = (-limits[0] + abs(baseline)) / abs(gain) * scale
    if not bound <= 0.5 * MAX_ABS_MV:  # a wide margin over rounding
        return _SLOW
    pattern = None
    if invalid is not None and limits[0] <= invalid <= limits[1]:
        pattern = np.array(invalid, dtype=dtype).tobytes()
    return (gain, baseline, scale, pattern)


class StreamProcessor:
    """Everything the monitor keeps for one stream.

    Frames are checked, stored in the ring buffer and queued for detection;
    the owner runs detection for many streams at once (a :class:`DetectorBank`
    per sampling rate), hands the peaks back with :meth:`add_peaks`, and collects
    finished beats with :meth:`ready`. Sample indices are the stream's: the
    device's own index plus ``offset`` (0 until a device restart).
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
        self.max_gap = round(config.max_gap_s * self.fs)
        self.tracker = SequenceTracker(next_seq=first.seq, next_sample=first.start, max_gap=self.max_gap)
        self.offset = 0  # stream index = device index + offset
        self.origin = first.start  # first sample index seen
        self.segment_origin = first.start  # detector index 0 of the current segment (stream indexing)
        self.ring = RingBuffer(round(config.buffer_s * self.fs), channels=1)
        self.ring.end = first.start
        self.queued: list[NDArray[np.float64]] = []  # samples waiting for detection
        self.queued_samples = 0
        self.max_queued = max(1, round(config.max_queued_s * self.fs))
        self.eos = False  # end-of-stream received, detector not yet flushed
        self.stats = StreamStats()
        self.quality = QualityTracker(self.stream, self.fs, origin=first.start, config=config.quality)
        self.events: list[TechnicalAlarm] = []  # this module's technical alarm onsets/ends, not yet taken
        self._alarms: dict[str, TechnicalAlarm] = {}  # open ones, by kind
        self._pre = round(config.window_pre_s * self.fs)
        self._post = round(config.window_post_s * self.fs)
        self._rr_wait = round(config.rr_wait_s * self.fs)
        self._qrs_half = max(1, round(0.05 * self.fs))
        self._stale = round(2 * MAX_FRAME_SECONDS * self.fs)  # a run this far behind the stream is forgotten
        # index before which the detector can report no new peak (set by the owner)
        self.settled: Callable[[], int] = lambda: self.samples_end
        # called when queued input reaches max_queued, so the owner runs detection (set by the owner)
        self.drain: Callable[[], None] = lambda: None
        self._run: _Run | None = None
        self._plans: dict[tuple[str, float, float, str, int | None], _Plan | None] = {}
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
        """Stream index one past the newest sample."""
        return self.tracker.next_sample + self.offset

    @property
    def active_alarms(self) -> list[str]:
        """Technical alarms open on this stream: the quality tracker's and this module's."""
        return [*self.quality.active_alarms, *self._alarms]

    # ---------------------------------------------------------------- input
    def on_frame(self, frame: DataFrame, now: float) -> list[_Held] | None:
        """Take one data frame; return the frames of a new segment when the device restarted.

        The owner then closes the current segment, calls :meth:`begin_segment`
        and :meth:`take` for each returned frame. Rejections raise :class:`FrameError`.
        """
        if self.eos:
            raise FrameError("after_eos", f"stream {self.stream!r} sent data after its end-of-stream")
        if frame.fs != self.fs or frame.channels != self.channels:
            self._open_alarm(FORMAT_ALARM)
            raise FrameError(
                "format_changed",
                f"stream {self.stream!r} changed fs/channels mid-stream "
                f"({self.fs} Hz {list(self.channels)} -> {frame.fs} Hz {list(frame.channels)})",
            )
        x, clean = self._convert(frame)
        verdict = self.tracker.check(frame.seq, frame.start)
        if verdict.accept:
            run = self._run
            if run is not None:
                if run.held:
                    run.interleaved += 1
                    self._release(run)
                if self.tracker.next_sample - run.main_at_last > self._stale:
                    self._drop_run()
            self._accept(frame, x, verdict.gap, now, clean)
            if self._alarms:
                self._close_alarm(FORMAT_ALARM, end=frame.start + self.offset)
            return None
        if not verdict.foreign:
            self.stats.rejected[verdict.reason] += 1
            return None
        return self._foreign(_Held(frame, x, verdict.reason, clean))

    def _foreign(self, item: _Held) -> list[_Held] | None:
        run = self._run
        if run is None or not run.continues(item.frame, self.max_gap):
            self._drop_run()
            run = self._run = _Run(item.frame.seq, item.frame.start, self.tracker.next_sample)
        run.add(item)
        run.main_at_last = self.tracker.next_sample
        self.stats.held += 1
        if len(run.held) >= self.config.restart_frames:  # the current sequence fell silent
            held = run.held
            run.held = []
            self.stats.held -= len(held)
            self._drop_run()
            return held
        if not run.conflict and run.length >= self.config.restart_frames and run.interleaved >= 2:
            run.conflict = True
            self.stats.conflicts += 1
            self._open_alarm(CONFLICT_ALARM)
            self._release(run)
        return None

    def _release(self, run: _Run) -> None:
        """Reject the run's held frames: as a conflict, or under their own reasons."""
        for item in run.held:
            reason = "stream_conflict" if run.conflict else item.reason
            self.stats.rejected[reason] += 1
            self.tracker.note(reason)
        self.stats.held -= len(run.held)
        run.held = []

    def _drop_run(self) -> None:
        run = self._run
        if run is None:
            return
        self._release(run)
        if run.conflict:
            self._close_alarm(CONFLICT_ALARM)
        self._run = None

    def _convert(self, frame: DataFrame) -> tuple[NDArray[np.float64], bool]:
        """The monitored lead in mV (as :meth:`DataFrame.millivolts`), and whether it is clean.

        Clean: integer samples with a gain, baseline and unit under which no
        raw value can map beyond :data:`MAX_ABS_MV` (e.g. 16-bit samples at
        200 units/mV), and none equal to the ``invalid`` value. Then every value
        is finite and in range, so the per-sample checks are skipped; the
        arithmetic is the same as :meth:`DataFrame.millivolts`, value for value.
        """
        lead = self.lead
        key = (frame.dtype, frame.gain[lead], frame.baseline[lead], frame.units[lead], frame.invalid)
        plan = self._plans.get(key, _UNKNOWN)
        if plan is _UNKNOWN:
            plan = self._plans[key] = _plan(*key)
            if len(self._plans) > 16:  # a device cycling through formats: keep the newest
                del self._plans[next(iter(self._plans))]
        if plan is _SLOW:
            return frame.millivolts(lead), False
        gain, baseline, scale, pattern = plan
        # the invalid value's bytes anywhere in the samples (any channel, any offset): the general path
        if pattern is not None and pattern in frame.samples.tobytes():
            return frame.millivolts(lead), False
        raw = frame.samples[:, lead]
        x = raw.astype(np.float64)
        if baseline != 0:
            x -= baseline
        x /= gain
        if scale != 1.0:
            x *= scale
        return x, True

    def _accept(self, frame: DataFrame, x: NDArray[np.float64], gap: int, now: float, clean: bool = False) -> None:
        if clean:
            n_out = 0
        else:
            out_of_range = np.abs(x) > MAX_ABS_MV
            n_out = int(np.count_nonzero(out_of_range))
            if n_out:
                x = np.where(out_of_range, np.nan, x)
        # Missing samples are filled with NaN so indices stay aligned; the
        # detector holds the last value across them. Long gaps go in pieces, so
        # queued input never outgrows the ring buffer.
        left = gap
        while left > 0:
            piece = min(left, self.max_queued)
            self._append(np.full(piece, np.nan))
            left -= piece
        self._append(x)
        st = self.stats
        st.frames += 1
        st.samples += frame.n
        st.out_of_range += n_out
        st.nan_samples += gap if clean else gap + int(np.count_nonzero(np.isnan(x)))
        if st.first_arrival is None:
            st.first_arrival = now
        st.last_arrival = now

    def _append(self, x: NDArray[np.float64]) -> None:
        self.tracker.advance(x.size)
        self.ring.append(x)  # stored as float32
        self.quality.process(x)
        self.queued.append(x)
        self.queued_samples += x.size
        if self.queued_samples >= self.max_queued:
            self.drain()  # keep queued input well inside the ring buffer

    def begin_segment(self, frame: DataFrame) -> None:
        """Follow a new sequence starting with ``frame`` (after the owner closed the current segment)."""
        start = self.samples_end
        self.offset = start - frame.start
        self.tracker.restart(frame.seq, frame.start)
        self.stats.restarts += 1
        self.segment_origin = start
        self.queued = []
        self.queued_samples = 0
        self._pending.clear()
        self._last_sent = None
        self._rr_recent.clear()
        self._rr_mean = None

    def take(self, item: _Held, now: float) -> None:
        """Accept a held frame of the new segment (see :meth:`on_frame`)."""
        verdict = self.tracker.check(item.frame.seq, item.frame.start)
        if verdict.accept:
            self._accept(item.frame, item.x, verdict.gap, now, item.clean)
        else:
            self.stats.rejected[verdict.reason] += 1

    def on_eos(self, eos: EndOfStream) -> None:
        if self.eos:
            raise FrameError("after_eos", f"stream {self.stream!r} sent a second end-of-stream")
        if eos.seq < self.tracker.next_seq or eos.start < self.tracker.next_sample:
            raise FrameError(
                "eos_mismatch",
                f"stream {self.stream!r}: end-of-stream at seq {eos.seq}, sample {eos.start} goes back "
                f"(next expected {self.tracker.next_seq}, {self.tracker.next_sample})",
            )
        if eos.start > self.tracker.next_sample or eos.seq > self.tracker.next_seq:
            self.stats.eos_early += 1  # frames before the eos went missing: count it, end anyway
        self._drop_run()
        self.stats.eos_received += 1
        self.eos = True

    def release_held(self) -> None:
        """End of stream: frames still held are rejected under their reasons."""
        self._drop_run()

    def close_alarms(self) -> None:
        """End of stream: end this module's open technical alarms."""
        for kind in list(self._alarms):
            self._close_alarm(kind)

    def _open_alarm(self, kind: str) -> None:
        if kind not in self._alarms:
            alarm = self._alarms[kind] = TechnicalAlarm(self.stream, kind, self.samples_end)
            self.events.append(TechnicalAlarm(alarm.stream, alarm.kind, alarm.onset))

    def _close_alarm(self, kind: str, end: int | None = None) -> None:
        alarm = self._alarms.pop(kind, None)
        if alarm is not None:
            end = max(alarm.onset, self.samples_end if end is None else end)
            self.events.append(TechnicalAlarm(alarm.stream, alarm.kind, alarm.onset, end))

    def take_queued(self) -> NDArray[np.float64]:
        x = self.queued[0] if len(self.queued) == 1 else np.concatenate(self.queued)
        self.queued = []
        self.queued_samples = 0
        return x

    def add_peaks(self, peaks: NDArray[np.int64]) -> None:
        """R peaks from the detector, in detector indexing (0 = first sample of the segment)."""
        if peaks.size:
            self._pending.extend((peaks + self.segment_origin).tolist())

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
            if self._qrs_amplitude(peak) < self.config.min_qrs_mv:
                self.stats.low_amplitude += 1
                continue
            out.append(self._make_beat(peak, nxt, now))
        return out

    @property
    def pending_peaks(self) -> Sequence[int]:
        """Detected R peaks not yet sent as beats (oldest first)."""
        return self._pending

    def _qrs_amplitude(self, peak: int) -> float:
        """Peak-to-peak (mV) of the detection lead within 50 ms of the R peak."""
        lo = max(peak - self._qrs_half, self.ring.start, self.segment_origin)
        hi = min(peak + self._qrs_half + 1, self.ring.end)
        if hi <= lo:
            return math.inf
        x = self.ring.read(lo, hi)[:, 0]
        x = x[np.isfinite(x)]
        return float(x.max() - x.min()) if x.size else math.inf

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
        # only samples of this segment: a restarted device's signal does not continue the old one
        lo = max(start, self.ring.start, self.segment_origin)
        hi = min(stop, self.ring.end)
        if lo >= hi:  # nothing of the window held (the buffer rule in StreamConfig prevents it)
            window = np.zeros(stop - start, dtype=np.float32)
        else:
            window = self.ring.read(lo, hi)[:, 0]
            if lo > start or hi < stop:  # segment start or end: pad with edge values
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

    Bad input is counted, never raised (see the module docstring for every
    rule): ``rejected`` counts messages that could not be attributed to a
    stream, by reason; per-stream rejections live in each stream's stats. A
    stream whose processing fails is marked with ``stats.error`` and stops
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
        self.banks: dict[float, DetectorBank[str]] = {}
        self._dirty: dict[str, StreamProcessor] = {}  # streams with queued input or an eos
        self._ready: list[Beat] = []  # beats found by a step that on_message forced
        self.technical: list[TechnicalAlarm] = []  # alarm onsets/ends not yet taken by the owner
        self.ended: list[StreamProcessor] = []  # streams ended since the owner last took this list
        self._on_new_stream = on_new_stream

    def feed(self, parts: Sequence[bytes]) -> list[Beat]:
        self.on_message(parts)
        return self.step()

    def unaccounted(self) -> int:
        """Messages without a fate: always 0 (each is accepted, rejected or held exactly once)."""
        routed = sum(p.stats.accounted() for p in self.streams.values())
        return self.messages - sum(self.rejected.values()) - routed

    def on_message(self, parts: Sequence[bytes]) -> None:
        self.messages += 1
        now = self.clock()
        try:
            frame = decode_frame(parts)
        except FrameError as exc:
            self.rejected[exc.reason] += 1
            return
        except Exception:  # decode_frame raises only FrameError; should a bug slip through, count it
            self.rejected["decode_error"] += 1
            return
        proc = self.streams.get(frame.stream) or self._new_stream(frame)
        if proc is None:
            return
        proc.stats.messages += 1
        if proc.stats.error is not None:
            proc.stats.rejected["stream_failed"] += 1
            return
        before = proc.stats.accounted()
        try:
            self._dirty[proc.stream] = proc
            if isinstance(frame, EndOfStream):
                proc.on_eos(frame)
            else:
                held = proc.on_frame(frame, now)
                if held is not None:
                    if self._close_segment(proc, now):
                        proc.begin_segment(held[0].frame)
                        for item in held:
                            proc.take(item, now)
                    else:  # the stream failed while finishing its segment
                        proc.stats.rejected["stream_failed"] += len(held)
            self._dirty[proc.stream] = proc
        except FrameError as exc:
            proc.stats.rejected[exc.reason] += 1
        except Exception as exc:  # a bug in one stream's processing: confine it to that stream
            self._fail(proc, exc)
            # this message (and any frames it held) get a fate
            proc.stats.rejected["internal_error"] += max(0, before + 1 - proc.stats.accounted())

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
        except Exception:  # a rate the filters cannot be designed for
            self.rejected["unsupported"] += 1
            return None
        self.banks[frame.fs] = bank
        bank.add(proc.stream)
        sid = proc.stream
        proc.settled = lambda: bank.settled(sid) + proc.segment_origin
        proc.drain = lambda: self._drain(proc)
        self.streams[frame.stream] = proc
        if self._on_new_stream is not None:
            self._on_new_stream(proc)
        return proc

    def _drain(self, proc: StreamProcessor) -> None:
        """A stream has max_queued input: detect now (the beats wait for the next step)."""
        self._dirty[proc.stream] = proc
        self._ready = self.step()  # takes self._ready with it
        self._dirty[proc.stream] = proc

    def _close_segment(self, proc: StreamProcessor, now: float) -> bool:
        """Device restart: finish the current segment's beats as at an end of stream; False if it failed."""
        sid = proc.stream
        bank = self.banks[proc.fs]
        if proc.queued:
            peaks = bank.process({sid: proc.take_queued()})
            if sid in peaks:
                proc.add_peaks(peaks[sid])
            self._collect_failures(bank)
        if proc.stats.error is None:
            proc.add_peaks(bank.flush(sid))
            self._collect_failures(bank)
        if proc.stats.error is not None:
            return False
        self._ready.extend(proc.ready(now, final=True))
        self._take_events(proc)
        bank.remove(sid)
        bank.add(sid)
        return True

    def _take_events(self, proc: StreamProcessor) -> None:
        if proc.quality.events:
            self.technical.extend(proc.quality.events)
            proc.quality.events.clear()
        if proc.events:
            self.technical.extend(proc.events)
            proc.events.clear()

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
            try:
                peaks = bank.process(chunks)
            except Exception as exc:  # the bank confines decision failures; anything else fails its streams
                for sid in chunks:
                    self._fail(dirty[sid], exc)
                continue
            for sid in chunks:
                if sid in peaks:
                    dirty[sid].add_peaks(peaks[sid])
            self._collect_failures(bank)
        for proc in dirty.values():
            if proc.stats.error is not None:
                continue
            try:
                out.extend(self._finish_step(proc, now))
            except Exception as exc:
                self._fail(proc, exc)
        return out

    def _finish_step(self, proc: StreamProcessor, now: float) -> list[Beat]:
        sid = proc.stream
        final = False
        if proc.eos and not proc.stats.ended:
            bank = self.banks[proc.fs]
            proc.add_peaks(bank.flush(sid))
            self._collect_failures(bank)
            if proc.stats.error is not None:
                return []
            bank.remove(sid)
            proc.quality.flush()
            proc.close_alarms()
            proc.stats.ended = final = True
            self.ended.append(proc)
        beats = proc.ready(now, final=final)
        self._take_events(proc)
        return beats

    def _fail(self, proc: StreamProcessor, exc: Exception) -> None:
        if proc.stats.error is None:
            proc.stats.error = f"{type(exc).__name__}: {exc}"

    def _collect_failures(self, bank: DetectorBank[str]) -> None:
        for sid, exc in bank.failed.items():
            self._fail(self.streams[sid], exc)
        bank.failed.clear()

    def flush_all(self) -> list[Beat]:
        """Shutdown: end every stream still open, returning its last beats."""
        for proc in self.streams.values():
            if not proc.eos and proc.stats.error is None:
                proc.release_held()
                proc.eos = True
                self._dirty[proc.stream] = proc
        return self.step()

    def forget(self, stream: str) -> StreamProcessor | None:
        """Drop an ended (or failed) stream, so that its id can start a new stream and the
        table of streams stays bounded on a monitor that runs for months."""
        proc = self.streams.get(stream)
        if proc is None or not (proc.stats.ended or proc.stats.error is not None):
            return None
        del self.streams[stream]
        self._dirty.pop(stream, None)
        bank = self.banks.get(proc.fs)
        if bank is not None and proc.stats.error is not None:
            with contextlib.suppress(KeyError):  # already out of the detector bank
                bank.remove(stream)
        return proc

    def all_ended(self, expected: set[str]) -> bool:
        return all(s in self.streams and self.streams[s].stats.ended for s in expected)
