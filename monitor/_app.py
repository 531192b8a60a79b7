"""The monitor: ZeroMQ ingest loop tying streams, engine and outputs together."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb
import zmq

from engine import Beat, BeatClassifier, LabeledBeat, UnclassifiedClassifier
from engine._batcher import Batcher, BatcherConfig
from monitor._annotations import AnnotationWriter
from monitor._errors import SourceError
from monitor._scoring import MatchResult, match_beats, reference_beats
from monitor._stream import Ingest, StreamConfig, StreamProcessor
from monitor._view import LiveView
from monitor._wire import MAX_HEADER_BYTES, MAX_SAMPLES_PER_FRAME
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
        self.batcher: Batcher[Beat] = Batcher(self.config.batcher)
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

    def stop(self) -> None:
        """Ask ``run()`` to stop (safe from signal handlers and other threads)."""
        self._stop.set()

    def _on_new_stream(self, proc: StreamProcessor) -> None:
        if self.annotations is not None:
            self.annotations.register(proc.stream, proc.fs)

    def run(self) -> int:
        """Run until done; return a process exit code (0 ok, 1 a stream or the replay failed)."""
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.RCVHWM, 10000)
        sock.bind(self.endpoint)
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.ready.set()
        thread = None
        replay_stop = threading.Event()
        try:
            if self.replayer is not None:
                thread = self.replayer.start_thread(self._ctx, self.endpoint, replay_stop)
            self._loop(sock)
        finally:
            replay_stop.set()
            if thread is not None:
                thread.join(timeout=5)
            self._drain(sock)
            self._finish()
            sock.close()
        failed = [p for p in self.ingest.streams.values() if p.stats.error is not None]
        for p in failed:
            log.error("stream %s failed: %s", p.stream, p.stats.error)
        if self.replayer is not None and self.replayer.error is not None:
            err = self.replayer.error
            log.error("replay failed: %s: %s", type(err).__name__, err)
            return 1
        return 1 if failed else 0

    def _loop(self, sock: zmq.Socket[bytes]) -> None:
        expected = set(self._ids)
        while not self._stop.is_set():
            timeout = self.config.poll_ms
            due = self.batcher.next_deadline()
            if due is not None:
                timeout = min(timeout, max(0, math.ceil(1000 * (due - self.clock()))))
            if sock.poll(timeout, zmq.POLLIN):
                self._receive_burst(sock)
            self._run_batches()
            self._after_messages()
            if self.replayer is not None:
                if self.replayer.error is not None:
                    return
                finished = self.replayer.done.is_set() and self.ingest.all_ended(expected)
                if finished and not sock.poll(0, zmq.POLLIN):
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
        """Classify every batch the batcher says is due now (full ones, or partial ones at their deadline)."""
        while (batch := self.batcher.on_deadline(self.clock())) is not None:
            t0 = time.perf_counter()
            self._classify(batch)
            self.batcher.on_done(len(batch), time.perf_counter() - t0)

    def _technical(self) -> None:
        events, self.ingest.technical = self.ingest.technical, []
        for alarm in events:
            fs = self.ingest.streams[alarm.stream].fs
            state = "ended" if alarm.end is not None else "raised"
            log.warning(
                "stream %s: technical alarm %r %s at %.1f s",
                alarm.stream,
                alarm.kind,
                state,
                (alarm.end if alarm.end is not None else alarm.onset) / fs,
            )
            if self.annotations is not None:
                self.annotations.add_technical(alarm, fs)

    def _drain(self, sock: zmq.Socket[bytes]) -> None:
        """Take what is already queued (shutdown) without waiting for more."""
        while sock.poll(0, zmq.POLLIN):
            self._receive_burst(sock)

    def _classify(self, beats: list[Beat]) -> None:
        if beats:
            self._deliver(beats, self.classifier.classify(beats))

    def _queue(self, beat: Beat) -> None:
        shed = self.batcher.on_beat(beat)
        if shed is not None:  # overload: the beat still counts, unclassified
            self._deliver([shed], ["Q"])

    def _deliver(self, beats: list[Beat], labels: list[str]) -> None:
        labeled = [LabeledBeat(b, lab) for b, lab in zip(beats, labels, strict=True)]
        self.labeled += len(labeled)
        if self.annotations is not None:
            self.annotations.add(labeled)
        if self.view is not None:
            self.view.on_beats(labeled)

    def _after_messages(self) -> None:
        ended, self.ingest.ended = self.ingest.ended, []
        if ended:  # their last beats may wait in the batcher: classify them before the files are written
            for batch in self.batcher.flush(self.clock()):
                self._classify(batch)
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
        for batch in self.batcher.flush(self.clock()):
            self._classify(batch)
        self._technical()
        self._after_messages()
        if self.annotations is not None:
            self.annotations.write_all()
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
