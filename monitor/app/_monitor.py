"""The monitor: wires ingest, the label path, rhythm logic, alarms and sinks, and runs the poll loop."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import zmq

from engine import Batcher, Beat, BeatClassifier, EngineSupervisor, UnclassifiedClassifier
from monitor.alarms import AlarmEvent, AlarmManager
from monitor.app._config import MonitorConfig
from monitor.app._intake import Intake
from monitor.app._labels import LabelFlow
from monitor.app._outputs import Acknowledgements, open_outputs
from monitor.app._snapshot import build_snapshot
from monitor.app._source import Source
from monitor.app._streams import StreamTable
from monitor.app._summary import RecordSummary, summarize_streams
from monitor.ingest import Ingest, StreamProcessor
from monitor.observe import StatusSnapshot, StreamStatus
from monitor.outputs import (
    AlarmLog,
    AlarmRecorder,
    AlertBus,
    AnnotationSink,
    AnnotationWriter,
    LiveView,
    Located,
    LogLineSink,
    Sink,
    Sinks,
    StripRecorder,
    ViewSink,
    WaveTap,
    monitor_id,
)
from replay import Replayer, stream_ids

__all__ = ["Monitor"]

log = logging.getLogger(__name__)

#: How often the loop publishes a fresh status snapshot (wall time), besides when streams end or are forgotten:
#: metrics scrapes and the view need no more, and with a thousand streams a snapshot costs ~15 ms.
SNAPSHOT_INTERVAL_S = 1.0


class Monitor:
    """Receives frames on a ZeroMQ PULL socket and runs every stream through the pipeline.

    For a replay source the replayer runs in a thread and connects to an
    ``inproc://`` endpoint of the same context: the same socket, parser and
    ingest code as real devices. ``run()`` returns when a finite replay has
    ended and every beat is processed, or when ``stop()`` is called.

    Scoring runs pass ``lockstep=True`` (each message is finished, labels and
    alarms included, before the next is taken) and ``record_alarms=True``
    (every transition kept in ``alarm_events``); neither belongs to a bedside
    configuration, so neither is in :class:`MonitorConfig`.

    A live stream whose device stays silent for ``stream_timeout_s`` is ended
    (its alarms with the reason "device silent for N s") and later forgotten;
    when the monitor stops, every alarm still active ends ("monitor stopped").
    """

    def __init__(
        self,
        source: Source,
        config: MonitorConfig | None = None,
        *,
        classifier: BeatClassifier | None = None,
        view: LiveView | None = None,
        clock: Callable[[], float] = time.monotonic,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        engine_factory: Callable[[], BeatClassifier] | None = None,
        lockstep: bool = False,
        record_alarms: bool = False,
    ) -> None:
        self.source = source
        self.config = cfg = config or MonitorConfig()
        self.view = view
        self.clock = clock
        self.lockstep = lockstep
        self._ctx = context or zmq.Context.instance()
        self._stop = threading.Event()
        self.id = monitor_id()
        self.sinks = Sinks([LogLineSink(self.locate)])
        self._recorder = AlarmRecorder() if record_alarms else None
        if self._recorder is not None:
            self.sinks.add(self._recorder)
        if cfg.annotations:
            self.sinks.add(AnnotationSink(AnnotationWriter(cfg.annotations), self.locate))
        if view is not None:
            self.sinks.add(ViewSink(view, self.locate))
        stream_cfg = cfg.stream
        if source.is_replay and not cfg.replay.loop:  # finite: keep peaks for the summary
            stream_cfg = dataclasses.replace(stream_cfg, keep_peaks=True)
        self.ingest = Ingest(stream_cfg, clock=clock, on_new_stream=self._on_new_stream)
        self.alarms = AlarmManager(self.sinks, silence_s=cfg.silence_s, shed_clear_s=cfg.shed_clear_s)
        self.streams = StreamTable(cfg.rhythm, self.alarms, self.sinks)
        self.batcher: Batcher[Beat] = Batcher(cfg.batcher, priority=self._has_alarm)
        self.engine = EngineSupervisor(
            classifier or UnclassifiedClassifier(),
            factory=engine_factory,
            clock=clock,
            context=self._ctx,
            threaded=cfg.engine_thread and not lockstep,
        )
        self.labels = LabelFlow(self.batcher, self.engine, self.streams, self.alarms, self.sinks, clock)
        self.bus: AlertBus | None = None
        # in-process readers of the bus (the --web page), added before run(): every message, strips included
        self.bus_taps: list[Callable[[str, dict[str, Any]], None]] = []
        self.second_lead_for: Callable[[str], bool] | None = None  # a stream's second lead drawn now (bed view)
        self.wave: WaveTap | None = None
        self.strips: StripRecorder | None = None  # alarm review strips, with an alarm log
        self.acks = Acknowledgements()  # from the central station page (--web)
        self.alarm_log: AlarmLog | None = None
        self.started_at = clock()
        self._last_rhythm = -math.inf
        self._last_status = -math.inf
        self.replayer: Replayer | None = None
        self._ids: list[str] = []
        if source.is_replay:
            self._ids = stream_ids(source.records)
            self.replayer = Replayer(source.records, cfg.replay, ids=self._ids)
        self.intake = Intake(self._ctx, source.endpoint, cfg.keys)
        self.endpoint = self.intake.endpoint
        self.summaries: list[RecordSummary] = []
        self.ready = threading.Event()  # set once the ingest socket is bound
        self.bound_endpoint: str | None = None
        self.alerts_endpoint: str | None = None
        self._snapshot_at = clock()
        self._snapshot = build_snapshot(self, self._snapshot_at)

    # ------------------------------------------------------------ what others read
    @property
    def alarm_events(self) -> list[AlarmEvent]:
        """Every alarm transition so far (only with ``record_alarms=True``)."""
        if self._recorder is None:
            raise AttributeError("alarm_events needs Monitor(..., record_alarms=True)")
        return self._recorder.events

    def add_sink(self, sink: Sink) -> None:
        """Send every later beat, alarm and vitals update to ``sink`` too."""
        self.sinks.add(sink)

    def locate(self, stream: str, sample: int) -> Located:
        """Stream index ``sample`` of ``stream`` as the device numbers it (its own index, boot and segment label;
        the stream index itself for a stream no longer known). The outputs write these; the rhythm logic and
        alarm events keep the stream's monotonic indices."""
        proc = self.ingest.streams.get(stream)
        if proc is None:
            return Located(sample)
        segment = proc.segments.at(sample)
        return Located(sample - segment.offset, segment.boot, segment.label, proc.segments.current.number > 0)

    def stop(self) -> None:
        """Ask ``run()`` to stop (safe from signal handlers and other threads)."""
        self._stop.set()

    def _has_alarm(self, stream: str) -> bool:
        state = self.streams.get(stream)
        return state is not None and bool(state.alarms.active)

    def _on_new_stream(self, proc: StreamProcessor) -> None:
        self.streams.add(proc, self.clock())
        self.sinks.on_stream_start(proc.stream, proc.fs)

    # ------------------------------------------------------------ run
    def run(self) -> int:
        """Run until done; return a process exit code (0 ok, 1 a stream or the replay failed)."""
        thread = None
        replay_stop = threading.Event()
        try:
            self.bound_endpoint = self.intake.open(self.ingest)
            self._open_outputs()
            self.ready.set()
            if self.replayer is not None:
                thread = self.replayer.start_thread(self._ctx, self.endpoint, replay_stop)
            self._loop()
        finally:
            replay_stop.set()
            if thread is not None:
                thread.join(timeout=5)
            try:
                if self.ready.is_set():
                    while self.intake.receive(self.ingest):  # what is already queued, without waiting
                        self._took()
                    self._finish()
            finally:
                self.intake.close()
                self.engine.close()
                self.sinks.close()
                if self.bus is not None:
                    self.bus.close()
        failed = [p for p in self.ingest.streams.values() if p.stats.error is not None]
        for p in failed:
            log.error("stream %s failed: %s", p.stream, p.stats.error)
        if self.replayer is not None and self.replayer.error is not None:
            err = self.replayer.error
            log.error("replay failed: %s: %s", type(err).__name__, err)
            return 1
        return 1 if failed else 0

    def _open_outputs(self) -> None:
        open_outputs(self)

    def _loop(self) -> None:
        expected = set(self._ids)
        sock = self.intake.sock
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        wake = self.engine.wake
        if wake is not None:
            poller.register(wake, zmq.POLLIN)
        while not self._stop.is_set():
            timeout = self.config.poll_ms
            due = self.batcher.next_deadline()
            if due is not None and not self.engine.busy:
                timeout = min(timeout, max(0, math.ceil(1000 * (due - self.clock()))))
            ready = dict(poller.poll(timeout))
            if sock in ready:
                self.intake.receive(self.ingest, limit=1 if self.lockstep else 2000)
                self._took()
            self._turn()
            if self.replayer is not None:
                if self.replayer.error is not None:
                    return
                finished = self.replayer.done.is_set() and self.ingest.all_ended(expected)
                if finished and self.labels.idle and not self.intake.pending():
                    return

    def process(self, messages: Iterable[Sequence[bytes]] = ()) -> None:
        """One turn of the poll loop on ``messages``, as if they had arrived on the ingest socket (tests and
        embedding without sockets; call it from one thread, not while ``run()`` runs)."""
        for parts in messages:
            self.ingest.on_message(parts)
        self._took()
        self._turn()

    def _took(self) -> None:
        for beat in self.ingest.step():
            self.labels.queue(beat)
        self._technical()

    def _technical(self) -> None:
        for alarm in self.ingest.take_technical():
            state = self.streams.get(alarm.stream)
            if state is not None:
                self.alarms.technical(state.alarms, alarm)

    def _turn(self) -> None:
        if self.lockstep:
            self.labels.flush()
        self.labels.run_due()
        self._after_messages()
        self._housekeeping(force=self.lockstep)

    def _housekeeping(self, force: bool = False) -> None:
        now = self.clock()
        self.intake.reload_keys()  # keys and policies changed with ecg-keys (a revoked key is refused)
        self._output_failures()
        if force or now - self._last_rhythm >= self.config.rhythm_interval_s:
            self._last_rhythm = now
            self.streams.update_rhythm(self.ingest.streams.values())
            changed = bool(self.streams.end_silent(now, self.config.stream_timeout_s))
            if changed:
                self._took()  # their last beats and technical alarm ends
                self._after_messages()
            if not self.source.is_replay:
                for sid in self.streams.forget_ended(self.ingest, now, self.config.retain_ended_s):
                    self.sinks.on_stream_forgotten(sid)
                    changed = True
            if force or changed or now - self._snapshot_at >= SNAPSHOT_INTERVAL_S:
                self._publish_snapshot(now)
        if self.strips is not None:
            self.strips.poll(self.ingest.streams.values())
        self.acks.drain(self)
        if self.bus is not None:
            if self.wave is not None:
                self.wave.poll(self.ingest.streams.values())
            self.bus.serve_subscriptions()
            for stream, alarm_id, by, at in self.bus.take_acks():  # from central stations elsewhere
                self.acks.add({"id": alarm_id}, stream, by, at)
            if now - self._last_status >= self.config.status_interval_s:
                self._last_status = now
                self.bus.status(self.status())

    def _output_failures(self) -> None:
        """Each output that failed for a stream since the last turn: an ``output_failed`` alarm on it."""
        for stream, sink, reason in self.sinks.take_failures():
            state = self.streams.get(stream)
            if state is not None:  # a forgotten stream's failure is only logged and counted
                self.alarms.output_failed(state.alarms, state.proc.samples_end, sink, reason)

    def _after_messages(self) -> None:
        ended = self.ingest.take_ended()
        if ended:  # their last beats may wait in the batcher: classify them before the files are written
            self.labels.flush()
            self.streams.update_rhythm(ended)
        view = self.view
        now = self.clock() if view is not None else 0.0
        final: dict[str, StreamStatus] = {}
        if ended and view is not None:  # each ended stream's last figures, for its last line
            final = {s.stream: s for s in self._publish_snapshot(now).streams}
        for proc in ended:
            self.sinks.on_stream_end(proc.stream)
            if view is not None:
                view.on_stream_end(final[proc.stream])
        if view is not None and view.due(now):
            view.refresh(self._publish_snapshot(now), now)

    def _finish(self) -> None:
        self.streams.closing("monitor stopped")
        for beat in self.ingest.flush_all():
            self.labels.queue(beat)
        self.labels.flush()
        self._technical()
        self.streams.update_rhythm(self.ingest.streams.values())
        self._output_failures()
        self.streams.end_alarms("monitor stopped")  # none is left open, technical ones included
        self._after_messages()
        if self.strips is not None:
            self.strips.flush(self.ingest.streams.values())  # what there is of the strips still waiting
        if self.bus is not None:
            if self.wave is not None:
                self.wave.poll(self.ingest.streams.values(), force=True)  # the last strips
            self.bus.status(self.status())
        if self.view is not None:
            now = self.clock()
            self.view.refresh(self._publish_snapshot(now), now, force=True)
        refs = dict(zip(self._ids, self.source.records, strict=True)) if self.source.is_replay else {}
        self.summaries = summarize_streams(self.ingest.streams.values(), refs, score=not self.config.replay.loop)

    # ------------------------------------------------------------ status
    def snapshot(self) -> StatusSnapshot:
        """The status snapshot the loop thread published last (safe to read from any thread)."""
        return self._snapshot

    def status(self) -> dict[str, Any]:
        """Take a fresh snapshot (on the loop thread) and return the status topic's figures."""
        return self._publish_snapshot().to_status()

    def _publish_snapshot(self, now: float | None = None) -> StatusSnapshot:
        self._snapshot_at = self.clock() if now is None else now
        self._snapshot = build_snapshot(self, self._snapshot_at)
        return self._snapshot
