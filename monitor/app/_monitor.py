"""The monitor: ZeroMQ ingest loop tying streams, engine and outputs together."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
import zmq

from engine import Beat, BeatClassifier, LabeledBeat, UnclassifiedClassifier
from engine._batcher import Batcher, BatcherConfig
from engine._worker import EngineWorker
from monitor.alarms import AlarmEvent, RhythmAnalyzer, RhythmSettings
from monitor.detect import TechnicalAlarm
from monitor.errors import SourceError, require_positive
from monitor.evaluation import MatchResult, match_beats, reference_beats
from monitor.ingest import Ingest, StreamConfig, StreamProcessor
from monitor.observe import LatencyHistogram
from monitor.outputs import AlertBus, AnnotationWriter, LiveView, alarm_body, monitor_id
from monitor.protocol import MAX_HEADER_BYTES, MAX_SAMPLES_PER_FRAME
from monitor.transport import Authenticator, CurveConfig, secure_bind
from monitor.vocabulary import NORMAL_AUX, rhythm_aux
from replay._publisher import ReplayConfig, Replayer, stream_ids
from replay._records import RecordRef, database_records, resolve_record

__all__ = ["Monitor", "MonitorConfig", "RecordSummary", "Source", "parse_source"]

log = logging.getLogger(__name__)

#: Largest message the ingest socket accepts (bigger ones are dropped by ZeroMQ).
MAX_MESSAGE_BYTES = MAX_HEADER_BYTES + MAX_SAMPLES_PER_FRAME * 32 * 8 + 1024
_ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")
_instance = itertools.count()


@dataclass(frozen=True)
class Source:
    """Where samples come from: records to replay in-process, or an endpoint to bind."""

    records: tuple[RecordRef, ...] = ()
    endpoint: str | None = None

    @property
    def is_replay(self) -> bool:
        return bool(self.records)


def parse_source(spec: str, data_dir: str | Path | None = None, *, offline: bool | None = None) -> Source:
    """Parse ``--source``: ``replay:100``, ``replay:100,101``, ``replay:mitdb``,
    ``replay:PATH/TO/RECORD``, ``replay:DIR`` (its RECORDS), or an endpoint
    (``tcp://*:5555``, ``ipc:///tmp/ecg``) on which devices connect."""
    spec = (spec or "").strip()
    if spec.startswith("replay:"):
        body = spec[len("replay:") :].strip()
        if not body:
            raise SourceError("--source replay: needs record names, e.g. replay:100 or replay:100,101 or replay:mitdb")
        refs: list[RecordRef] = []
        for item in (s.strip() for s in body.split(",")):
            if not item:
                raise SourceError(f"--source {spec!r}: empty record name in the list")
            if item == "mitdb":
                refs.extend(database_records(data_dir, offline=offline))
            elif Path(item).is_dir():
                refs.extend(database_records(item, offline=True))
            else:
                refs.append(resolve_record(item, data_dir, offline=offline))
        return Source(records=tuple(refs))
    if spec.startswith(_ENDPOINT_SCHEMES):
        return Source(endpoint=spec)
    scheme = spec.split(":", 1)[0] if ":" in spec else spec
    raise SourceError(
        f"--source {spec!r}: unknown source {scheme!r}; use replay:RECORD[,RECORD...], replay:mitdb, "
        "replay:PATH, or an endpoint such as tcp://*:5555 or ipc:///tmp/ecg"
    )


@dataclass(frozen=True)
class MonitorConfig:
    stream: StreamConfig = field(default_factory=StreamConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    annotations: Path | None = None
    poll_ms: int = 100
    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    rhythm: RhythmSettings = field(default_factory=RhythmSettings)
    alerts: str | None = None  # endpoint of the alert bus (XPUB), None: no bus
    alarm_log: Path | None = None  # SQLite alarm log, None: none
    lockstep: bool = False  # finish each message (detection, labels, alarms) before the next: scoring runs
    keep_alarms: bool = False  # keep every alarm transition in Monitor.alarm_events (scoring)
    status_interval_s: float = 5.0
    keys: Path | None = None  # CURVE keys folder (ecg-keys): authenticate devices and bridges
    rhythm_interval_s: float = 0.25  # how often rhythm logic catches up with the streams (wall time)
    shed_clear_s: float = 10.0  # a beats-shed technical alarm ends after this long without shedding
    silence_s: float = 5.0  # a live stream with no data this long (wall time) raises 'signal lost'
    retain_ended_s: float = 60.0  # live sources: an ended stream is forgotten this long after its end
    engine_thread: bool = True  # label batches on a thread of their own (not in lockstep runs)

    def __post_init__(self) -> None:
        require_positive(self, "status_interval_s", "rhythm_interval_s", "shed_clear_s", "silence_s")


@dataclass(frozen=True)
class RecordSummary:
    """End-of-replay figures for one stream."""

    stream: str
    beats: int
    duration_s: float
    wall_s: float | None
    match: MatchResult | None

    @property
    def realtime_multiple(self) -> float | None:
        if not self.wall_s:
            return None
        return self.duration_s / self.wall_s

    def line(self) -> str:
        text = f"{self.stream}: {self.beats} beats in {self.duration_s / 60:.1f} min of ECG"
        if self.realtime_multiple is not None:
            text += f", {self.realtime_multiple:.0f}x real time"
        if self.match is not None:
            m = self.match
            text += f"; vs reference: TP {m.tp} FP {m.fp} FN {m.fn}, Se {m.se:.2f} +P {m.ppv:.2f}"
        return text


class Monitor:
    """Receives frames on a ZeroMQ PULL socket and runs every stream through the pipeline.

    For a replay source the replayer runs in a thread and connects to an
    ``inproc://`` endpoint of the same context: the same socket, parser and
    ingest code as real devices. ``run()`` returns when a finite replay has
    ended and every beat is processed, or when ``stop()`` is called.
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
    ) -> None:
        self.source = source
        self.config = config or MonitorConfig()
        self.classifier = classifier or UnclassifiedClassifier()
        self.view = view
        self.clock = clock
        self._ctx = context or zmq.Context.instance()
        self._stop = threading.Event()
        self.annotations = AnnotationWriter(self.config.annotations) if self.config.annotations else None
        stream_cfg = self.config.stream
        if source.is_replay and not self.config.replay.loop:  # finite: keep peaks for the summary
            stream_cfg = dataclasses.replace(stream_cfg, keep_peaks=True)
        self.ingest = Ingest(stream_cfg, clock=clock, on_new_stream=self._on_new_stream)
        self.batcher: Batcher[Beat] = Batcher(self.config.batcher, priority=self._has_alarm)
        self.rhythm: dict[str, RhythmAnalyzer] = {}
        self._quality_done: dict[str, int] = {}
        self._inflight: dict[str, deque[int]] = {}  # samples of beats queued for labels, per stream
        self._finished: set[str] = set()
        self._rhythm_seen: dict[str, tuple[int, int, int, bool]] = {}  # what each update last saw
        self._alarm_active: dict[str, dict[str, AlarmEvent]] = {}  # stream -> kind -> onset event
        self._rhythm_aux: dict[str, str] = {}
        self._shed_last: dict[str, float] = {}  # stream -> wall time of the last shed beat
        self._silent: dict[str, float] = {}  # stream -> wall time of its last data, while silent
        self._ended_at: dict[str, float] = {}  # stream -> wall time its end was first seen
        self.forgotten = 0  # ended streams dropped from the tables
        self.alarm_events: list[AlarmEvent] = []
        self.alarm_counts: dict[str, int] = {}
        self._engine_factory = engine_factory  # rebuilds the classifier after a failure (None: retry the same one)
        self._engine_down = False
        self._engine_retry_at = -math.inf
        self._engine_backoff = 1.0
        self.engine_errors = 0
        self.engine_problem: str | None = None
        self.latency = LatencyHistogram()  # beat ready -> label delivered (metrics and status)
        self.bus: AlertBus | None = None
        self.alarm_log: Any = None
        self.id = monitor_id()
        self._started = clock()
        self._last_rhythm = -math.inf
        self._last_status = -math.inf
        self.replayer: Replayer | None = None
        self._ids: list[str] = []
        if source.is_replay:
            self._ids = stream_ids(source.records)
            self.replayer = Replayer(source.records, self.config.replay, ids=self._ids)
        self.endpoint = source.endpoint or f"inproc://ecg-monitor-ingest-{next(_instance)}"
        self.labeled: int = 0
        self.summaries: list[RecordSummary] = []
        self.ready = threading.Event()  # set once the ingest socket is bound
        self.bound_endpoint: str | None = None
        self.alerts_endpoint: str | None = None
        self._curve: CurveConfig | None = None
        self._auth: Authenticator | None = None
        self._worker: EngineWorker | None = None

    def stop(self) -> None:
        """Ask ``run()`` to stop (safe from signal handlers and other threads)."""
        self._stop.set()

    def _has_alarm(self, stream: str) -> bool:
        return bool(self._alarm_active.get(stream))

    def _on_new_stream(self, proc: StreamProcessor) -> None:
        if self.annotations is not None:
            self.annotations.register(proc.stream, proc.fs)
        cfg = self.config.rhythm.for_stream(proc.stream)
        self.rhythm[proc.stream] = RhythmAnalyzer(proc.stream, proc.fs, cfg, origin=proc.origin)
        self._quality_done[proc.stream] = 0
        self._inflight[proc.stream] = deque()

    def run(self) -> int:
        """Run until done; return a process exit code (0 ok, 1 a stream or the replay failed)."""
        self._start_security()
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.RCVHWM, 10000)
        try:
            if self.source.endpoint:  # devices connect here: authenticated when keys are configured
                self.bound_endpoint = secure_bind(sock, self.endpoint, self._curve, self._auth)
            else:  # the in-process replayer
                sock.bind(self.endpoint)
                self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            sock.close()
            self._stop_security()
            raise
        thread = None
        replay_stop = threading.Event()
        try:
            self._open_outputs()
            if self.config.engine_thread and not self.config.lockstep:
                self._worker = EngineWorker(self._ctx, self._engine_call)
            self.ready.set()
            if self.replayer is not None:
                thread = self.replayer.start_thread(self._ctx, self.endpoint, replay_stop)
            self._loop(sock)
        finally:
            replay_stop.set()
            if thread is not None:
                thread.join(timeout=5)
            try:
                self._drain(sock)
                self._finish()
            finally:
                sock.close()
                if self._worker is not None:
                    self._worker.close()
                    self._worker = None
                self._close_outputs()
        failed = [p for p in self.ingest.streams.values() if p.stats.error is not None]
        for p in failed:
            log.error("stream %s failed: %s", p.stream, p.stats.error)
        if self.replayer is not None and self.replayer.error is not None:
            err = self.replayer.error
            log.error("replay failed: %s: %s", type(err).__name__, err)
            return 1
        return 1 if failed else 0

    def _start_security(self) -> None:
        if self.config.keys is not None:
            self._curve = CurveConfig.server(self.config.keys)
            self._auth = Authenticator(self._ctx, self._curve).start()

    def _stop_security(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def _open_outputs(self) -> None:
        if self.config.alarm_log is not None:
            from monitor.outputs import AlarmLog

            self.alarm_log = AlarmLog(self.config.alarm_log, run_id=self.id)
            closed = self.alarm_log.close_orphans(
                "monitor restarted; the previous run ended without closing it", time.time()
            )
            if closed:
                log.warning("alarm log: closed %d alarm(s) left open by an earlier run", closed)
        if self.config.alerts is not None:
            self.bus = AlertBus(
                self._ctx, self.config.alerts, monitor=self.id, curve=self._curve, authenticator=self._auth
            )
            self.alerts_endpoint = self.bus.endpoint

    def _close_outputs(self) -> None:
        if self.bus is not None:
            self.bus.close()
        if self.alarm_log is not None:
            self.alarm_log.close()
        self._stop_security()

    def _loop(self, sock: zmq.Socket[bytes]) -> None:
        expected = set(self._ids)
        lockstep = self.config.lockstep
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if self._worker is not None:
            poller.register(self._worker.wake, zmq.POLLIN)
        while not self._stop.is_set():
            timeout = self.config.poll_ms
            due = self.batcher.next_deadline()
            if due is not None and (self._worker is None or not self._worker.busy):
                timeout = min(timeout, max(0, math.ceil(1000 * (due - self.clock()))))
            ready = dict(poller.poll(timeout))
            if sock in ready:
                self._receive_burst(sock, limit=1 if lockstep else 2000)
            if lockstep:
                for batch in self.batcher.flush(self.clock()):
                    self._classify(batch)
            self._run_batches()
            self._after_messages()
            self._housekeeping(force=lockstep)
            if self.replayer is not None:
                if self.replayer.error is not None:
                    return
                finished = self.replayer.done.is_set() and self.ingest.all_ended(expected)
                idle = self._worker is None or not self._worker.busy
                if finished and idle and not len(self.batcher) and not sock.poll(0, zmq.POLLIN):
                    return

    def _receive_burst(self, sock: zmq.Socket[bytes], limit: int = 2000) -> None:
        for _ in range(limit):
            try:
                parts = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            self.ingest.on_message(parts)
        for beat in self.ingest.step():
            self._queue(beat)
        self._technical()

    def _run_batches(self) -> None:
        """Label every batch the batcher says is due now (full ones, or partial ones at their deadline):
        on the engine thread when there is one (one batch at a time), else here."""
        worker = self._worker
        if worker is None:
            while (batch := self.batcher.on_deadline(self.clock())) is not None:
                t0 = time.perf_counter()
                self._classify(batch)
                self.batcher.on_done(len(batch), time.perf_counter() - t0)
            return
        self._collect()
        now = self.clock()
        while not worker.busy and (batch := self.batcher.on_deadline(now)) is not None:
            if self._engine_ready(now):
                worker.submit(batch)
            else:
                self._deliver(batch, ["Q"] * len(batch))

    def _collect(self, wait: bool = False) -> None:
        """Take the engine thread's finished batches (``wait``: also the one in flight)."""
        worker = self._worker
        if worker is None:
            return
        now = self.clock()
        if worker.busy and not worker.alive:  # the thread died: surface it, start another
            beats = worker.running or []
            worker.close(timeout=0.1)
            self._worker = EngineWorker(self._ctx, self._engine_call)
            self._engine_failed(beats, RuntimeError("the engine thread died"), now)
            self._deliver(beats, ["Q"] * len(beats))
            return
        for r in worker.wait() if wait else worker.take():
            self.batcher.on_done(len(r.beats), r.seconds)
            self._labels_arrived(r.beats, r.labels, r.error, now)

    def _engine_call(self, beats: list[Beat]) -> list[str]:
        return self.classifier.classify(beats)

    def _technical(self) -> None:
        events, self.ingest.technical = self.ingest.technical, []
        for alarm in events:
            proc = self.ingest.streams[alarm.stream]
            state = "ended" if alarm.end is not None else "raised"
            log.warning(
                "stream %s: technical alarm %r %s at %.1f s",
                alarm.stream,
                alarm.kind,
                state,
                (alarm.end if alarm.end is not None else alarm.onset) / proc.fs,
            )
            if self.annotations is not None:
                self.annotations.add_technical(alarm, proc.fs)
            self._alarms(self._technical_events(alarm, proc.fs))

    def _technical_events(self, alarm: TechnicalAlarm, fs: float) -> list[AlarmEvent]:
        kind = alarm.kind.replace(" ", "_")
        text = alarm.kind.capitalize()
        onset = AlarmEvent(alarm.stream, kind, "onset", alarm.onset, alarm.onset, fs, text, category="technical")
        if alarm.end is None:
            return [onset]
        end = dataclasses.replace(onset, state="end", sample=alarm.end, end_reason="condition cleared")
        known = self._alarm_active.get(alarm.stream, {}).get(kind)
        return [end] if known is not None else [onset, end]

    def _drain(self, sock: zmq.Socket[bytes]) -> None:
        """Take what is already queued (shutdown) without waiting for more."""
        while sock.poll(0, zmq.POLLIN):
            self._receive_burst(sock)

    def _classify(self, beats: list[Beat]) -> None:
        """Label a batch here and now; while the engine fails, beats go on unclassified (``Q``) and rate,
        asystole and VF alarms keep running, since they need no labels."""
        if not beats:
            return
        now = self.clock()
        if not self._engine_ready(now):
            self._deliver(beats, ["Q"] * len(beats))
            return
        try:
            labels = self.classifier.classify(beats)
        except Exception as exc:
            self._labels_arrived(beats, None, exc, now)
            return
        self._labels_arrived(beats, labels, None, now)

    def _engine_ready(self, now: float) -> bool:
        """False while a failed engine waits for its retry; rebuilds it (if it can) once the retry is due."""
        if not self._engine_down:
            return True
        if now < self._engine_retry_at:
            return False
        if self._engine_factory is not None:
            close = getattr(self.classifier, "close", None)
            if callable(close):
                close()
            try:
                self.classifier = self._engine_factory()  # restart it
            except Exception as exc:
                self._engine_failed([], exc, now)
                return False
        return True

    def _labels_arrived(self, beats: list[Beat], labels: list[str] | None, error: Exception | None, now: float) -> None:
        """A batch came back from the engine (here or from its thread): deliver its labels, or on a
        failure (an exception, or the wrong number of labels) surface it and deliver the beats as ``Q``."""
        if error is None and (labels is None or len(labels) != len(beats)):
            got = "no" if labels is None else len(labels)
            error = RuntimeError(f"the engine returned {got} labels for {len(beats)} beats")
        if error is not None or labels is None:
            self._engine_failed(beats, error or RuntimeError("no labels"), now)
            self._deliver(beats, ["Q"] * len(beats))
            return
        if self._engine_down:
            self._engine_recovered()
        self._deliver(beats, labels)

    def _engine_failed(self, beats: list[Beat], exc: Exception, now: float) -> None:
        self.engine_errors += 1
        self._engine_backoff = min(30.0, self._engine_backoff * 2) if self._engine_down else 1.0
        self._engine_retry_at = now + self._engine_backoff
        self.engine_problem = f"{type(exc).__name__}: {exc}"
        if not self._engine_down:
            log.error("engine failed (%s); beats go unclassified, retrying", self.engine_problem)
        self._engine_down = True
        events = []
        for b in {b.stream: b for b in beats}.values():
            if "engine_failed" not in self._alarm_active.get(b.stream, {}):
                text = "Arrhythmia analysis unavailable: engine failed"
                events.append(AlarmEvent(b.stream, "engine_failed", "onset", b.sample, b.sample, b.fs, text,
                                         {}, None, "technical"))  # fmt: skip
        self._alarms(events)

    def _engine_recovered(self) -> None:
        log.warning("engine recovered after %d failure(s)", self.engine_errors)
        self._engine_down = False
        self.engine_problem = None
        events = []
        for sid, active in list(self._alarm_active.items()):
            onset = active.get("engine_failed")
            if onset is not None:
                sample = self.ingest.streams[sid].samples_end
                events.append(dataclasses.replace(onset, state="end", sample=sample, end_reason="engine recovered"))
        self._alarms(events)

    def _queue(self, beat: Beat) -> None:
        self._inflight[beat.stream].append(beat.sample)
        shed = self.batcher.on_beat(beat)
        if shed is not None:  # overload: the beat still counts, unclassified
            self._deliver([shed], ["Q"])
            self._on_shed(shed)

    def _on_shed(self, beat: Beat) -> None:
        self._shed_last[beat.stream] = self.clock()
        if "beats_shed" not in self._alarm_active.get(beat.stream, {}):
            text = "Beats shed: classification falling behind"
            event = AlarmEvent(beat.stream, "beats_shed", "onset", beat.sample, beat.sample, beat.fs, text)
            self._alarms([dataclasses.replace(event, category="technical")])

    def _deliver(self, beats: list[Beat], labels: list[str]) -> None:
        labeled = [LabeledBeat(b, lab) for b, lab in zip(beats, labels, strict=True)]
        self.labeled += len(labeled)
        now = self.clock()
        for lb in labeled:
            b = lb.beat
            self.latency.observe(now - b.ready_at)
            inflight = self._inflight[b.stream]
            if inflight and inflight[0] == b.sample:
                inflight.popleft()
            elif b.sample in inflight:
                inflight.remove(b.sample)
            analyzer = self.rhythm.get(b.stream)
            if analyzer is not None and b.stream not in self._finished:
                analyzer.on_beat(b.sample, lb.label)
            if self.bus is not None:
                self.bus.beat(b.stream, b.sample, b.fs, lb.label, b.rr_prev, now - b.ready_at)
        if self.annotations is not None:
            self.annotations.add(labeled)
        if self.view is not None:
            self.view.on_beats(labeled)

    # ------------------------------------------------------------ rhythm and alarms
    def _housekeeping(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_rhythm >= self.config.rhythm_interval_s:
            self._last_rhythm = now
            self._update_rhythm(self.ingest.streams.values())
            self._end_shedding(now)
            self._check_silence(now)
            if not self.source.is_replay:
                self._forget_ended(now)
        if self.bus is not None:
            self.bus.serve_subscriptions()
            if now - self._last_status >= self.config.status_interval_s:
                self._last_status = now
                self.bus.status(self.status())
                if self._auth is not None:
                    self._auth.reload_if_changed()  # keys added or revoked with ecg-keys

    def _horizon(self, proc: StreamProcessor) -> int:
        """Every beat before this sample has been labelled and handed to the rhythm logic."""
        h = min(proc.settled(), proc.quality.known_until)
        pending = proc.pending_peaks
        if pending:
            h = min(h, pending[0])
        inflight = self._inflight[proc.stream]
        if inflight:
            h = min(h, inflight[0])
        return h

    def _update_rhythm(self, procs: Iterable[StreamProcessor], reason: str = "stream ended") -> None:
        for proc in procs:
            sid = proc.stream
            analyzer = self.rhythm.get(sid)
            if analyzer is None or sid in self._finished:
                continue
            end = proc.samples_end
            over = proc.stats.ended or proc.stats.error is not None
            seen = (end, len(self._inflight[sid]), analyzer.pending, over)
            if self._rhythm_seen.get(sid) == seen:
                continue  # nothing new since the last update
            self._rhythm_seen[sid] = seen
            blocks = proc.quality.blocks_from(self._quality_done[sid])
            self._quality_done[sid] = proc.quality.judged
            for block_end, state in blocks:
                analyzer.on_quality(block_end, state, arrived=end)
            horizon = end if over else self._horizon(proc)
            events, vitals = analyzer.advance(horizon, arrived=end)
            if over and not self._inflight[sid]:
                events += analyzer.finish(end, reason)
                self._finished.add(sid)
            self._alarms(events)
            for v in vitals:
                if self.bus is not None:
                    self.bus.vitals(v)
                if self.view is not None:
                    self.view.on_vitals(v)

    def _forget_ended(self, now: float) -> None:
        """Streams that ended (or failed) ``retain_ended_s`` ago are dropped: the table stays bounded over
        months, and a device that reuses its id after its end-of-stream starts a new stream."""
        for sid, proc in list(self.ingest.streams.items()):
            if not (proc.stats.ended or proc.stats.error is not None):
                continue
            since = self._ended_at.setdefault(sid, now)
            if now - since < self.config.retain_ended_s or sid not in self._finished or self._inflight[sid]:
                continue
            if self.annotations is not None:
                self.annotations.write(sid)
                self.annotations.forget(sid)
            self.ingest.forget(sid)
            for table in (self.rhythm, self._quality_done, self._inflight, self._alarm_active, self._rhythm_aux,
                          self._rhythm_seen, self._silent, self._shed_last, self._ended_at):  # fmt: skip
                table.pop(sid, None)
            self._finished.discard(sid)
            self.forgotten += 1

    def _check_silence(self, now: float) -> None:
        """A device that stops sending (no end-of-stream) raises 'signal lost' after ``silence_s``."""
        limit = self.config.silence_s
        for sid, proc in self.ingest.streams.items():
            last = proc.stats.last_arrival
            if last is None or proc.stats.ended or proc.stats.error is not None:
                continue
            silent = now - last >= limit
            if silent and sid not in self._silent:
                self._silent[sid] = last
                if "signal_lost" not in self._alarm_active.get(sid, {}):
                    text = f"Signal lost: no data from the device for {limit:g} s"
                    at = proc.samples_end
                    self._alarms([AlarmEvent(sid, "signal_lost", "onset", at, at, proc.fs, text, {"silent_s": limit},
                                             None, "technical")])  # fmt: skip
            elif not silent and sid in self._silent:
                del self._silent[sid]
                onset = self._alarm_active.get(sid, {}).get("signal_lost")
                if onset is not None and onset.text.startswith("Signal lost: no data"):
                    end = dataclasses.replace(onset, state="end", sample=proc.samples_end, end_reason="data resumed")
                    self._alarms([end])

    def _end_shedding(self, now: float) -> None:
        for sid, last in list(self._shed_last.items()):
            if now - last >= self.config.shed_clear_s:
                del self._shed_last[sid]
                onset = self._alarm_active.get(sid, {}).get("beats_shed")
                if onset is not None:
                    sample = self.ingest.streams[sid].samples_end
                    self._alarms([dataclasses.replace(onset, state="end", sample=sample, end_reason="caught up")])

    def _alarms(self, events: list[AlarmEvent]) -> None:
        for e in events:
            active = self._alarm_active.setdefault(e.stream, {})
            if e.state == "onset":
                active[e.kind] = e
                self.alarm_counts[e.kind] = self.alarm_counts.get(e.kind, 0) + 1
            elif e.state == "end":
                active.pop(e.kind, None)
            if self.config.keep_alarms:
                self.alarm_events.append(e)
            body = self.bus.alarm(e) if self.bus is not None else alarm_body(e)
            if self.alarm_log is not None:
                self.alarm_log.record(dict(body, time=time.time()))
            if e.category == "clinical" and e.state in ("onset", "end"):
                level = logging.WARNING if e.priority == "high" else logging.INFO
                log.log(
                    level, "stream %s: %s %s (%s) at %.1f s", e.stream, e.text, e.state, e.priority, e.sample / e.fs
                )
            if self.view is not None:
                self.view.on_alarm(e)
            if self.annotations is not None and e.category == "clinical":
                aux = rhythm_aux(active)
                if aux != self._rhythm_aux.get(e.stream, NORMAL_AUX):
                    self._rhythm_aux[e.stream] = aux
                    at = e.onset_sample if e.state == "onset" else e.sample
                    self.annotations.add_rhythm(e.stream, e.fs, at, aux)

    def status(self) -> dict[str, Any]:
        """Monitor-wide figures (the status topic of the alert bus)."""
        procs = list(self.ingest.streams.values())
        rejected: dict[str, int] = dict(self.ingest.rejected)
        for p in procs:
            for reason, n in p.stats.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + n
        st = self.batcher.stats
        problems = [f"stream {p.stream} failed: {p.stats.error}" for p in procs if p.stats.error is not None]
        if self.engine_problem is not None:
            problems.append(f"engine failed ({self.engine_errors} times): {self.engine_problem}")
        return {
            "uptime_s": round(self.clock() - self._started, 3),
            "streams": len(procs),
            "streams_active": sum(1 for p in procs if not p.stats.ended),
            "messages": self.ingest.messages,
            "frames": sum(p.stats.frames for p in procs),
            "samples": sum(p.stats.samples for p in procs),
            "rejected": rejected,
            "beats": sum(p.stats.beats for p in procs),
            "labelled": self.labeled,
            "device_restarts": sum(getattr(p.stats, "restarts", 0) for p in procs),
            "stream_conflicts": sum(getattr(p.stats, "conflicts", 0) for p in procs),
            "samples_missing": sum(p.tracker.samples_missing for p in procs),
            "late": st.late,
            "shed": sum(st.shed.values()),
            "alarms_active": sum(len(a) for a in self._alarm_active.values()),
            "latency_ms": self.latency.percentiles_ms(),
            "engine": self.classifier.name,
            "health": "degraded" if problems or st.shed else "ok",
            "problems": problems,
        }

    def _after_messages(self) -> None:
        ended, self.ingest.ended = self.ingest.ended, []
        if ended:  # their last beats may wait in the batcher: classify them before the files are written
            self._collect(wait=True)
            for batch in self.batcher.flush(self.clock()):
                self._classify(batch)
            self._update_rhythm(ended)
        for proc in ended:
            if self.annotations is not None:
                self.annotations.write(proc.stream)
            if self.view is not None:
                self.view.on_stream_end(proc)
        if self.view is not None:
            self.view.refresh(self.ingest, self.clock())

    def _finish(self) -> None:
        for beat in self.ingest.flush_all():
            self._queue(beat)
        self._collect(wait=True)
        for batch in self.batcher.flush(self.clock()):
            self._classify(batch)
        self._technical()
        self._update_rhythm(self.ingest.streams.values(), reason="monitor stopped")
        self._after_messages()
        if self.annotations is not None:
            self.annotations.write_all()
        if self.bus is not None:
            self.bus.status(self.status())
        if self.view is not None:
            self.view.refresh(self.ingest, self.clock(), force=True)
        self.summaries = self._summaries()

    def _summaries(self) -> list[RecordSummary]:
        refs = dict(zip(self._ids, self.source.records, strict=True)) if self.source.is_replay else {}
        out = []
        for sid, proc in self.ingest.streams.items():
            st = proc.stats
            wall = None
            if st.first_arrival is not None and st.last_arrival is not None:
                wall = st.last_arrival - st.first_arrival
            duration = (proc.samples_end - proc.origin) / proc.fs
            match = None
            ref = refs.get(sid)
            if ref is not None and ref.has_annotations() and not self.config.replay.loop and st.ended:
                try:
                    ann = wfdb.rdann(str(ref.path), "atr")
                except Exception as exc:
                    log.warning("cannot read reference annotations of %s: %s", ref.path, exc)
                else:
                    beats = reference_beats(ann.sample, ann.symbol)
                    beats = beats[beats < proc.samples_end]
                    match = match_beats(beats, np.asarray(proc.peaks), round(0.150 * proc.fs))
            out.append(RecordSummary(sid, st.beats, duration, wall, match))
        return out
