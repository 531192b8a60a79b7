"""Everything the monitor keeps for one stream: sequence, ring buffer, queued input, quality and beats.

The rules it applies (gaps, frames from the past, format changes, reboots,
device restarts, two devices on one stream id, end of stream) are described in
:mod:`monitor.ingest._router`; the mapping of stream indices to the device's
own indices in :mod:`monitor.ingest._segments`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine import Beat
from monitor.detect import BeatAssembler, QualityTracker, TechnicalAlarm
from monitor.errors import FrameError
from monitor.ingest._config import MAX_ABS_MV, StreamConfig, StreamStats
from monitor.ingest._convert import LeadConverter, choose_lead
from monitor.ingest._display import display_lead
from monitor.ingest._ring import RingBuffer
from monitor.ingest._segments import SegmentTable
from monitor.ingest._sequence import SequenceTracker
from monitor.protocol import MAX_FRAME_SECONDS, DataFrame, EndOfStream

__all__ = ["CONFLICT_ALARM", "FORMAT_ALARM", "StreamProcessor"]

FORMAT_ALARM = "format changed"
CONFLICT_ALARM = "stream conflict"


@dataclass
class _Held:
    frame: DataFrame
    x: NDArray[np.float64]  # the monitored lead in mV
    reason: str  # the rejection reason if it turns out to be neither restart nor conflict
    clean: bool = False  # x is known to be finite and within MAX_ABS_MV (see LeadConverter)


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

    def release(self, stats: StreamStats, tracker: SequenceTracker) -> None:
        """Reject the held frames: as a conflict, or under their own reasons."""
        for item in self.held:
            reason = "stream_conflict" if self.conflict else item.reason
            stats.rejected[reason] += 1
            tracker.note(reason)
        stats.held -= len(self.held)
        self.held = []


class _Alarms:
    """A stream's own technical alarms (format changed, stream conflict): the open ones by kind, and
    the onsets and ends not yet taken."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.active: dict[str, TechnicalAlarm] = {}
        self.events: list[TechnicalAlarm] = []

    def __bool__(self) -> bool:
        return bool(self.active)

    def __contains__(self, kind: str) -> bool:
        return kind in self.active

    def open(self, kind: str, at: int) -> None:
        if kind not in self.active:
            self.active[kind] = TechnicalAlarm(self.stream, kind, at)
            self.events.append(TechnicalAlarm(self.stream, kind, at))

    def close(self, kind: str, end: int) -> None:
        alarm = self.active.pop(kind, None)
        if alarm is not None:
            self.events.append(TechnicalAlarm(alarm.stream, alarm.kind, alarm.onset, max(alarm.onset, end)))


class StreamProcessor:
    """Everything the monitor keeps for one stream.

    Frames are checked, stored in the ring buffer and queued for detection;
    the owner runs detection for many streams at once (a :class:`DetectorBank`
    per sampling rate), hands the peaks back with :meth:`add_peaks`, and collects
    finished beats with :meth:`ready`. Sample indices are the stream's: the
    device's own index plus ``offset`` (0 until the first new segment);
    :meth:`device_index` and ``segments.at`` map them back to the device's.
    """

    def __init__(self, first: DataFrame, config: StreamConfig) -> None:
        self.stream = first.stream
        self.fs = first.fs
        self.channels = first.channels
        self.units = first.units
        self.config = config
        lead, fallback = choose_lead(first.channels, config.leads)
        self.lead = lead  # the monitored channel, chosen on the first frame
        self.lead_name = first.channels[lead]
        self.converter = LeadConverter(lead)
        self.boot = first.boot  # the device's current run (None for a v1 device)
        self.segments = SegmentTable(first.boot, first.start)
        self.max_gap = round(config.max_gap_s * self.fs)
        self.tracker = SequenceTracker(next_seq=first.seq, next_sample=first.start, max_gap=self.max_gap)
        self.offset = 0  # stream index = device index + offset
        self.origin = first.start  # first sample index seen
        self.ring = RingBuffer(round(config.buffer_s * self.fs), channels=1)
        self.ring.end = first.start
        # a second lead for display only (config.second_lead)
        self.display = display_lead(first.channels, lead, self.fs, first.start) if config.second_lead else None
        self.queued: list[NDArray[np.float64]] = []  # samples waiting for detection
        self.queued_samples = 0
        self.max_queued = max(1, round(config.max_queued_s * self.fs))
        self.eos = False  # end-of-stream received, detector not yet flushed
        self.stats = StreamStats(lead_fallback=int(fallback))
        self.quality = QualityTracker(self.stream, self.fs, origin=first.start, config=config.quality)
        self.assembler = BeatAssembler(
            self.stream,
            self.fs,
            self.ring,
            self.quality,
            self.stats,
            window_pre_s=config.window_pre_s,
            window_post_s=config.window_post_s,
            rr_wait_s=config.rr_wait_s,
            min_qrs_mv=config.min_qrs_mv,
            keep_peaks=config.keep_peaks,
            origin=first.start,
        )
        self._alarms = _Alarms(self.stream)
        self._stale = round(2 * MAX_FRAME_SECONDS * self.fs)  # a run this far behind the stream is forgotten
        # index before which the detector can report no new peak (set by the owner)
        self.settled: Callable[[], int] = lambda: self.samples_end
        # called when queued input reaches max_queued, so the owner runs detection (set by the owner)
        self.drain: Callable[[], None] = lambda: None
        self._run: _Run | None = None
        self._old_boot_at = 0  # the stream's next sample (device indexing) at the last frame of an earlier boot

    # ----------------------------------------------------------- properties
    @property
    def samples_end(self) -> int:
        """Stream index one past the newest sample."""
        return self.tracker.next_sample + self.offset

    def device_index(self, sample: int) -> int:
        """The device's own sample index of stream index ``sample`` (they differ after a new segment)."""
        return self.segments.device_index(sample)

    @property
    def segment_origin(self) -> int:
        """Detector index 0 of the current segment, in stream indexing."""
        return self.assembler.segment_origin

    @property
    def pending_peaks(self) -> Sequence[int]:
        """Detected R peaks not yet sent as beats (oldest first)."""
        return self.assembler.pending

    @property
    def last_peak(self) -> int | None:
        """The R peak of the last beat sent."""
        return self.assembler.last_peak

    @property
    def peaks(self) -> list[int]:
        """Every R peak sent as a beat (only with ``config.keep_peaks``)."""
        return self.assembler.peaks

    @property
    def active_alarms(self) -> list[str]:
        """Technical alarms open on this stream: the quality tracker's and this module's."""
        return [*self.quality.active_alarms, *self._alarms.active]

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
        x, clean = self.converter(frame)
        if frame.boot != self.boot:
            return self._other_boot(_Held(frame, x, "old_boot", clean))
        if clean and self._run is None and not self._alarms and self.tracker.follows(frame.seq, frame.start):
            self.segments.late_run = 0  # the common case: the next frame, nothing held, nothing to close
            self._accept(frame, x, 0, now, True)
            return None
        verdict = self.tracker.check(frame.seq, frame.start)
        if verdict.accept:
            self.segments.late_run = 0
            run = self._run
            if run is not None:
                if run.held:
                    run.interleaved += 1
                    run.release(self.stats, self.tracker)
                if self.tracker.next_sample - run.main_at_last > self._stale:
                    self._drop_run()
            self._accept(frame, x, verdict.gap, now, clean)
            if self._alarms:
                self._close_alarm(FORMAT_ALARM, end=frame.start + self.offset)
                if self._run is None and self.tracker.next_sample - self._old_boot_at > self._stale:
                    self._close_alarm(CONFLICT_ALARM)  # the earlier boot fell silent
            return None
        if not verdict.foreign:
            self.stats.rejected[verdict.reason] += 1
            return None
        if self.boot is not None and verdict.reason == "jump":  # one boot, far ahead: a new segment at once
            return [_Held(frame, x, verdict.reason, clean)]
        return self._foreign(_Held(frame, x, verdict.reason, clean))

    def _other_boot(self, item: _Held) -> list[_Held] | None:
        """A frame of another boot: a reboot (a new boot id), a late frame of an earlier boot, or
        an earlier boot taking the stream back (``restart_frames`` of its frames in a row)."""
        verdict = self.segments.other_boot(item.frame.boot, self.config.restart_frames)
        if verdict == "new":
            self._drop_run()
            return [item]
        self.stats.rejected["old_boot"] += 1
        self._old_boot_at = self.tracker.next_sample
        if verdict == "conflict":  # an earlier boot keeps sending: two devices on one stream id
            self.stats.conflicts += 1
            self._open_alarm(CONFLICT_ALARM)
        return None

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
            run.release(self.stats, self.tracker)
        return None

    def _drop_run(self) -> None:
        run = self._run
        if run is None:
            return
        run.release(self.stats, self.tracker)
        if run.conflict:
            self._close_alarm(CONFLICT_ALARM)
        self._run = None

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
        if self.display is not None:
            self.display.append(frame, gap)
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
        """Follow a new boot, v1 restart or v2 gap over max_gap_s from ``frame`` (the segment was closed)."""
        start = self.samples_end
        if frame.boot != self.boot:
            self.stats.restarts += 1
            self.stats.reboots += 1
        elif frame.boot is not None and frame.seq >= self.tracker.next_seq and frame.start > self.tracker.next_sample:
            self.stats.long_gaps += 1
        else:
            self.stats.restarts += 1
        self.boot = frame.boot
        self.offset = self.segments.begin(frame.boot, start, frame.start).offset
        self.tracker.restart(frame.seq, frame.start)
        self.queued = []
        self.queued_samples = 0
        self.assembler.restart(start)

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
        verdict = _eos_verdict(eos, self.tracker, self.segments)
        if verdict == "early":
            self.stats.eos_early += 1  # frames before the eos went missing: count it, end anyway
        elif verdict == "total":
            self.stats.eos_total += 1
        self._drop_run()
        self.stats.eos_received += 1
        self.eos = True

    def release_held(self) -> None:
        """End of stream: frames still held are rejected under their reasons."""
        self._drop_run()

    def close_alarms(self) -> None:
        """End of stream: end this module's open technical alarms."""
        for kind in list(self._alarms.active):
            self._close_alarm(kind)

    @property
    def has_technical(self) -> bool:  # technical alarm onsets or ends wait for take_technical
        return self.quality.has_events or bool(self._alarms.events)

    def take_technical(self) -> list[TechnicalAlarm]:
        """The technical alarm onsets and ends raised since the last call, oldest first: the
        signal quality's, then this stream's own (format changed, stream conflict)."""
        out = self.quality.take_events()
        out.extend(self._alarms.events)
        self._alarms.events.clear()
        return out

    def _open_alarm(self, kind: str) -> None:
        self._alarms.open(kind, self.samples_end)

    def _close_alarm(self, kind: str, end: int | None = None) -> None:
        self._alarms.close(kind, self.samples_end if end is None else end)

    # -------------------------------------------------------------- detection
    def take_queued(self) -> NDArray[np.float64]:
        x = self.queued[0] if len(self.queued) == 1 else np.concatenate(self.queued)
        self.queued = []
        self.queued_samples = 0
        return x

    def add_peaks(self, peaks: NDArray[np.int64]) -> None:
        """R peaks from the detector, in detector indexing (0 = first sample of the segment)."""
        self.assembler.add_peaks(peaks)

    def ready(self, now: float, final: bool = False) -> list[Beat]:
        """Beats whose window and next R peak have arrived (all of them if ``final``)."""
        return self.assembler.ready(now, self.settled, final=final)


def _eos_verdict(eos: EndOfStream, tracker: SequenceTracker, segments: SegmentTable) -> str:
    """Check an end-of-stream against the stream's sequence: ``""`` (as expected), ``"early"`` (ahead
    of the data: frames went missing), ``"total"`` (a v1 end-of-stream giving the total samples
    sent); raise :class:`FrameError` (``old_boot``, ``eos_mismatch``) when it goes back."""
    current = segments.current
    if eos.boot != current.boot:
        if segments.is_old_boot(eos.boot):
            raise FrameError("old_boot", f"stream {eos.stream!r}: end-of-stream of an earlier boot {eos.boot!r}")
        return ""  # a new boot ends before sending any data: the stream ends
    if eos.seq >= tracker.next_seq and eos.start >= tracker.next_sample:
        return "early" if eos.start > tracker.next_sample or eos.seq > tracker.next_seq else ""
    # v1 senders that followed the old documentation send the total samples sent
    if current.boot is None and eos.seq >= tracker.next_seq and eos.start == tracker.next_sample - current.device_start:
        return "total"
    raise FrameError(
        "eos_mismatch",
        f"stream {eos.stream!r}: end-of-stream at seq {eos.seq}, sample {eos.start} goes back "
        f"(next expected {tracker.next_seq}, {tracker.next_sample})",
    )
