"""Per-stream state of the monitor beyond ingest: rhythm logic, alarms and label bookkeeping, one object a stream."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.alarms import AlarmManager, RhythmAnalyzer, RhythmSettings, StreamAlarms
from monitor.app._snapshot import stream_status_of
from monitor.ingest import Ingest, StreamProcessor
from monitor.observe import StreamStatus, retire
from monitor.outputs import Sink

__all__ = ["StreamState", "StreamTable"]

log = logging.getLogger(__name__)


@dataclass
class StreamState:
    """Everything the monitor keeps for one stream besides its :class:`StreamProcessor`."""

    proc: StreamProcessor
    rhythm: RhythmAnalyzer
    alarms: StreamAlarms
    inflight: deque[int] = field(default_factory=deque)  # samples of beats queued for labels, in queue order
    finished: bool = False  # rhythm logic closed (the stream ended and every label arrived)
    seen: tuple[int, int, int, bool] | None = None  # what the last rhythm update saw
    ended_at: float | None = None  # wall time its end was first seen (live sources forget it later)
    created_at: float = 0.0  # wall time the stream was created (its silence counts from here before any data)

    @property
    def stream(self) -> str:
        return self.proc.stream

    @property
    def over(self) -> bool:
        return self.proc.stats.ended or self.proc.stats.error is not None

    @property
    def end_reason(self) -> str:
        """Why its rhythm logic and alarms end: the stream's end, unless the monitor closes it (silence, stop)."""
        return self.alarms.end_reason or "stream ended"

    def horizon(self) -> int:
        """Every beat before this sample has been labelled and handed to the rhythm logic, and every quality
        block ending by it judged and handed over."""
        proc = self.proc
        h = min(proc.settled(), proc.quality.known_until)
        pending = proc.pending_peaks
        if pending:
            h = min(h, pending[0])
        if self.inflight:
            h = min(h, self.inflight[0])
        return h

    def label_arrived(self, sample: int) -> None:
        inflight = self.inflight
        if inflight and inflight[0] == sample:
            inflight.popleft()
        elif sample in inflight:
            inflight.remove(sample)


class StreamTable:
    """The monitor's per-stream states; runs each stream's rhythm logic up to what its inputs settle."""

    def __init__(self, rhythm: RhythmSettings, alarms: AlarmManager, sinks: Sink) -> None:
        self.rhythm_settings = rhythm
        self.alarms = alarms
        self.sinks = sinks
        self.states: dict[str, StreamState] = {}
        self.forgotten = 0  # ended streams dropped
        self.retired = StreamStatus("retired")  # the cumulative figures of the streams dropped, added up

    def __getitem__(self, stream: str) -> StreamState:
        return self.states[stream]

    def get(self, stream: str) -> StreamState | None:
        return self.states.get(stream)

    def add(self, proc: StreamProcessor, now: float = 0.0) -> StreamState:
        cfg = self.rhythm_settings.for_stream(proc.stream)
        analyzer = RhythmAnalyzer(proc.stream, proc.fs, cfg, origin=proc.origin)
        state = StreamState(proc, analyzer, StreamAlarms(proc.stream, proc.fs), created_at=now)
        self.states[proc.stream] = state
        return state

    def update_rhythm(self, procs: Iterable[StreamProcessor]) -> None:
        """Advance each stream's rhythm logic to the sample up to which its labels and quality are complete;
        once a stream is over and every label arrived, finish it and end every alarm it still has."""
        for proc in procs:
            state = self.states.get(proc.stream)
            if state is None or state.finished:
                continue
            analyzer = state.rhythm
            end = proc.samples_end
            over = state.over
            seen = (end, len(state.inflight), analyzer.pending, over)
            if state.seen == seen:
                continue  # nothing new since the last update
            state.seen = seen
            for block_end, quality in proc.quality.take_blocks():
                analyzer.on_quality(block_end, quality)
            # what it decides depends on the samples alone, not on how far this call goes (see RhythmAnalyzer)
            events, vitals = analyzer.advance(end if over and not state.inflight else state.horizon())
            if over and not state.inflight:
                events += analyzer.finish(end, state.end_reason)
                state.finished = True
            self.alarms.emit(state.alarms, events)
            if state.finished:  # the technical alarms of the monitor too (shedding, engine, silence)
                self.alarms.end_all(state.alarms, end, state.end_reason)
            for v in vitals:
                self.sinks.on_vitals(v)

    def end_silent(self, now: float, timeout_s: float) -> list[str]:
        """The timers of the monitor's clock: ``beats_shed`` ends, ``signal_lost`` starts or ends, and a live
        stream silent for ``timeout_s`` is ended as its end-of-stream would end it (the ingest finishes it at its
        next step); returns the streams ended."""
        silent = []
        for state in self.states.values():
            proc = state.proc
            self.alarms.end_shedding(state.alarms, now, proc.samples_end)
            if state.over:
                continue
            last = proc.stats.last_arrival
            if last is not None:
                self.alarms.check_silence(state.alarms, last, now, proc.samples_end)
            since = state.created_at if last is None else last
            if now - since >= timeout_s and state.alarms.end_reason is None:
                silent.append(state.stream)
                reason = f"device silent for {timeout_s:g} s"
                log.warning("stream %s: %s; ended", state.stream, reason)
                state.alarms.end_reason = reason
                proc.release_held()  # as Ingest.flush_all ends the streams still open at shutdown
                proc.eos = True
                proc.drain()  # the ingest finishes the stream now; its last beats come with its next step
        return silent

    def closing(self, reason: str) -> None:
        """Every stream not finished yet is being closed for ``reason`` (the monitor stops)."""
        for state in self.states.values():
            if not state.finished and state.alarms.end_reason is None:
                state.alarms.end_reason = reason

    def end_alarms(self, reason: str) -> None:
        """End every alarm still active on any stream (the monitor stops: none is left open)."""
        for state in self.states.values():
            self.alarms.end_all(state.alarms, state.proc.samples_end, reason)

    def forget_ended(self, ingest: Ingest, now: float, retain_s: float) -> list[str]:
        """Streams that ended (or failed) ``retain_s`` ago are dropped (the table stays bounded over months, and a
        device that reuses its id after its end-of-stream starts a new stream); returns their ids."""
        gone = []
        for sid, state in list(self.states.items()):
            if not state.over:
                continue
            if state.ended_at is None:
                state.ended_at = now
            if now - state.ended_at < retain_s or not state.finished or state.inflight:
                continue
            ingest.forget(sid)
            del self.states[sid]
            self.retired = retire(self.retired, stream_status_of(state.proc, now))
            self.forgotten += 1
            gone.append(sid)
        return gone
