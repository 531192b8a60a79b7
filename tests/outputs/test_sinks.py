"""Sinks: every valid stream id through every output, and one output's failure contained to its stream."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import sqlite3
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import wfdb
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Beat, LabeledBeat
from monitor.alarms import AlarmEvent, Vitals
from monitor.detect import TechnicalAlarm
from monitor.outputs import (
    AlarmLog,
    AlarmLogSink,
    AlarmRecorder,
    AlertBus,
    AnnotationSink,
    AnnotationWriter,
    BusSink,
    Sink,
    Sinks,
    decode_message,
)
from monitor.outputs._annotations import annotation_name, stream_of_annotation
from monitor.outputs._sink import SinkFailure
from monitor.protocol import STREAM_PATTERN

FS = 250.0
OUTPUTS = settings(deadline=None, derandomize=True, max_examples=40, suppress_health_check=list(HealthCheck))
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
stream_ids = st.one_of(
    st.from_regex(STREAM_PATTERN, fullmatch=True),
    st.builds(lambda a, b: a + b, st.sampled_from(_ALNUM), st.text(st.sampled_from("a9._-"), max_size=63)),
)
_endpoints = itertools.count()


def labelled(stream: str, samples: Sequence[int], label: str = "N") -> list[LabeledBeat]:
    window = np.zeros(8, dtype=np.float32)
    return [LabeledBeat(Beat(stream, s, FS, 0.8, None, None, None, window, s - 4, 0.0), label) for s in samples]


def life(sinks: Sink, stream: str) -> None:
    """One stream's whole life: start, beats, a clinical alarm and its rhythm, vitals, a technical alarm, end."""
    sinks.on_stream_start(stream, FS)
    sinks.on_beats(labelled(stream, [100, 300, 500], "V"), 1.0)
    onset = AlarmEvent(stream, "vtach", "onset", 100, 500, FS, "VT 150 bpm", {"hr": 150.0})
    sinks.on_alarm(onset)
    sinks.on_rhythm(stream, FS, 100, "(VT")
    sinks.on_vitals(Vitals(stream, 500, FS, 150.0, 3.0, "clean", ("vtach",)))
    sinks.on_technical(TechnicalAlarm(stream, "leads off", 600, 700), FS)
    sinks.on_alarm(dataclasses.replace(onset, state="end", sample=900, end_reason="condition cleared"))
    sinks.on_rhythm(stream, FS, 900, "(N")
    sinks.on_stream_end(stream)


class Broken(Sink):
    """Fails on every event of the streams in ``bad`` (all when empty)."""

    name = "broken"

    def __init__(self, *bad: str, error: BaseException | None = None) -> None:
        self.bad = set(bad)
        self.error = error or OSError(28, "No space left on device")
        self.beats: list[LabeledBeat] = []

    def _check(self, stream: str) -> None:
        if not self.bad or stream in self.bad:
            raise self.error

    def on_stream_start(self, stream: str, fs: float) -> None:
        self._check(stream)

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        for lb in beats:
            self._check(lb.beat.stream)
        self.beats += beats

    def on_alarm(self, event: AlarmEvent) -> None:
        self._check(event.stream)

    def on_vitals(self, vitals: Vitals) -> None:
        self._check(vitals.stream)

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self._check(stream)

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        self._check(alarm.stream)

    def on_stream_end(self, stream: str) -> None:
        self._check(stream)

    def close(self) -> None:
        raise self.error


# ------------------------------------------------------------------ every id through every output
@OUTPUTS
@given(stream=stream_ids)
def test_every_valid_id_goes_through_annotations_alarm_log_and_bus(
    stream: str, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    endpoint = f"inproc://sinks-{next(_endpoints)}"
    bus = AlertBus(ctx, endpoint, monitor="m1", clock=lambda: 1000.0)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoint)
    sub.subscribe(b"")
    for _ in range(200):  # the subscription reaches the bus before anything is published
        if bus.serve_subscriptions():
            break
        threading.Event().wait(0.005)
    with tempfile.TemporaryDirectory() as tmp:
        alarm_log = AlarmLog(Path(tmp) / "alarms.sqlite", run_id="r1")
        recorder = AlarmRecorder()
        broken = Broken()
        sinks = Sinks([broken, BusSink(bus), AlarmLogSink(alarm_log, lambda: 1000.0)])
        sinks.add(AnnotationSink(AnnotationWriter(Path(tmp) / "ann")))
        sinks.add(recorder)
        life(sinks, stream)
        sinks.close()
        # the bus: three beats, two alarm transitions and the vitals, each on the stream's topic
        got = [decode_message(sub.recv_multipart()) for _ in range(6) if sub.poll(2000, zmq.POLLIN)]
        assert not sub.poll(0, zmq.POLLIN)
        assert [(t.split("/")[0], b["stream"]) for t, b in got] == [
            ("beat", stream), ("beat", stream), ("beat", stream), ("alarm", stream), ("vitals", stream),
            ("alarm", stream),
        ]  # fmt: skip
        assert all(t.split("/")[1] == stream for t, _ in got)
        # the alarm log
        reader = AlarmLog.reader(Path(tmp) / "alarms.sqlite")
        assert [r["state"] for r in reader.history(stream=stream)] == ["end", "onset"]
        reader.close()
        # the annotation file
        (path,) = (Path(tmp) / "ann").glob("*.mon")
        assert path.stem == annotation_name(stream) and stream_of_annotation(path.stem) == stream
        ann = wfdb.rdann(str(path.with_suffix("")), "mon")
        assert ann.symbol.count("V") == 3 and ann.symbol.count("+") == 2 and ann.symbol.count("~") == 2
        # the broken output cost nothing but itself, and every failure of it was counted
        assert [e.state for e in recorder.events] == ["onset", "end"]
        assert sinks.failures == {("broken", stream): 9, ("broken", ""): 1}
        assert sinks.take_failures() == [(stream, "broken", "[Errno 28] No space left on device")]
    sub.close()
    bus.close()


# ------------------------------------------------------------------ containment
def test_a_failing_sink_is_counted_logged_once_and_queued_once_per_stream(caplog: pytest.LogCaptureFixture) -> None:
    recorder = AlarmRecorder()
    sinks = Sinks([Broken("bed.1", error=RuntimeError()), recorder])
    caplog.set_level(logging.ERROR, logger="monitor.outputs")
    for stream in ("bed.1", "bed.2", "bed.1"):
        sinks.on_alarm(AlarmEvent(stream, "pause", "onset", 10, 20, FS, "Pause"))
    assert [e.stream for e in recorder.events] == ["bed.1", "bed.2", "bed.1"]
    assert sinks.failures == {("broken", "bed.1"): 2}
    assert [r.getMessage() for r in caplog.records] == [
        "stream bed.1: output broken failed: RuntimeError (later failures are counted, not logged)"
    ]
    assert sinks.take_failures() == [("bed.1", "broken", "RuntimeError")]
    assert sinks.take_failures() == []
    sinks.on_vitals(Vitals("bed.1", 30, FS, 60.0, 0.0, "clean", ()))
    assert sinks.take_failures() == [("bed.1", "broken", "RuntimeError")]  # a new failure, queued again
    assert len(caplog.records) == 1 and sinks.failures["broken", "bed.1"] == 3


def test_one_streams_failure_does_not_keep_another_streams_beats_from_the_sink() -> None:
    picky = Broken("bad")
    sinks = Sinks([picky])
    mixed = [*labelled("good", [10]), *labelled("bad", [11]), *labelled("good", [30]), *labelled("bad", [31])]
    sinks.on_beats(mixed, 1.0)
    assert [(lb.beat.stream, lb.beat.sample) for lb in picky.beats] == [("good", 10), ("good", 30)]
    assert sinks.failures == {("broken", "bad"): 1}


def test_an_annotation_file_that_cannot_be_written_costs_only_its_stream(tmp_path: Path) -> None:
    (tmp_path / "bad.mon").mkdir()  # the target is a folder: the file cannot replace it
    (tmp_path / "bad.mon" / "keep").write_text("x")
    sinks = Sinks([AnnotationSink(AnnotationWriter(tmp_path))])
    for stream in ("bad", "ok.1", "ok-2"):
        sinks.on_stream_start(stream, FS)
        sinks.on_beats(labelled(stream, [100]), 1.0)
    sinks.on_stream_end("bad")
    sinks.on_beats(labelled("bad", [200]), 1.0)  # more for it (the rhythm at shutdown): written again at close
    sinks.close()
    assert sorted(p.name for p in tmp_path.glob("*.mon") if p.is_file()) == ["_ok_2e1.mon", "ok-2.mon"]
    assert sinks.failures == {("annotations", "bad"): 2}
    ((stream, sink, reason),) = sinks.take_failures()
    assert (stream, sink) == ("bad", "annotations") and "bad.mon" in reason


def test_the_annotation_sink_reports_each_failed_stream_at_close(tmp_path: Path) -> None:
    writer = AnnotationWriter(tmp_path)
    sink = AnnotationSink(writer)
    for stream in ("a", "b", "c"):
        sink.on_stream_start(stream, FS)
        (tmp_path / f"{stream}.mon").mkdir(exist_ok=stream == "b")
        (tmp_path / f"{stream}.mon" / "keep").write_text("x")
    (tmp_path / "b.mon" / "keep").unlink()
    (tmp_path / "b.mon").rmdir()
    with pytest.raises(SinkFailure) as failure:
        sink.close()
    assert sorted(failure.value.failures) == ["a", "c"]
    assert (tmp_path / "b.mon").is_file()


def test_a_forgotten_stream_is_forgotten_even_when_its_file_fails(tmp_path: Path) -> None:
    writer = AnnotationWriter(tmp_path)
    sinks = Sinks([AnnotationSink(writer)])
    sinks.on_stream_start("bed.7", FS)
    (tmp_path / f"{annotation_name('bed.7')}.mon").mkdir()
    (tmp_path / f"{annotation_name('bed.7')}.mon" / "keep").write_text("x")
    sinks.on_stream_forgotten("bed.7")
    assert writer.unwritten() == [] and sinks.failures == {("annotations", "bed.7"): 1}


def test_a_full_alarm_log_does_not_stop_the_other_outputs(tmp_path: Path) -> None:
    alarm_log = AlarmLog(tmp_path / "alarms.sqlite", run_id="r1")
    pages = alarm_log.conn.execute("PRAGMA page_count").fetchone()[0]
    alarm_log.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    recorder = AlarmRecorder()
    sinks = Sinks([AlarmLogSink(alarm_log), recorder])
    sinks.on_alarm(AlarmEvent("bed.3", "vtach", "onset", 1, 2, FS, "VT " * 3000))
    assert len(recorder.events) == 1
    ((stream, sink, reason),) = sinks.take_failures()
    assert (stream, sink) == ("bed.3", "alarm_log") and "database or disk is full" in reason
    sinks.close()
    assert sinks.failures == {("alarm_log", "bed.3"): 1}


def test_a_locked_alarm_log_fails_fast_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "alarms.sqlite"
    alarm_log = AlarmLog(path, run_id="r1", busy_s=0.05)
    sinks = Sinks([AlarmLogSink(alarm_log, lambda: 1000.0)])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    started = time.perf_counter()
    sinks.on_alarm(AlarmEvent("bed.4", "pause", "onset", 1, 2, FS, "Pause"))
    assert time.perf_counter() - started < 2.0
    assert sinks.failures == {("alarm_log", "bed.4"): 1}
    other.execute("ROLLBACK")
    other.close()
    sinks.on_alarm(AlarmEvent("bed.4", "pause", "end", 1, 3, FS, "Pause", end_reason="condition cleared"))
    assert [r["state"] for r in alarm_log.history()] == ["end"]
    assert sinks.failures == {("alarm_log", "bed.4"): 1}
    sinks.close()


def test_a_closed_alarm_log_is_contained() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        alarm_log = AlarmLog(Path(tmp) / "alarms.sqlite", run_id="r1")
        alarm_log.close()
        sinks = Sinks([AlarmLogSink(alarm_log)])
        sinks.on_alarm(AlarmEvent("bed-5", "pause", "onset", 1, 2, FS, "Pause"))
        assert sinks.take_failures()[0][:2] == ("bed-5", "alarm_log")


def test_a_sink_without_a_name_is_named_by_its_class() -> None:
    class Custom(Broken):
        name = ""

    sinks = Sinks([Custom()])
    sinks.on_stream_end("s")
    assert sinks.failures == {("Custom", "s"): 1}


def test_interrupts_are_not_contained() -> None:
    sinks = Sinks([Broken(error=KeyboardInterrupt())])
    with pytest.raises(KeyboardInterrupt):
        sinks.on_stream_end("s")
