"""Alarms on the sample clock, whatever classifies the beats and however many streams share the monitor: the
same samples give the same ``.mon`` files and alarm transitions with the in-process engine and with a remote
``ecg-engine``, and a stream among hundreds gives what it gives alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from engine import DEFAULT_WEIGHTS, BatcherConfig, BeatClassifier, CnnClassifier, EngineServer, RemoteClassifier
from monitor.app import Monitor, MonitorConfig, Source
from monitor.testing import FakeClock, frames_of
from tests.app.test_sample_clock import RUNS, RuleClassifier, drive, transition
from tests.conftest import lead_mv

needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")


# ------------------------------------------------------------------ in-process and remote engine


@pytest.fixture
def engine_server(ctx: zmq.Context[zmq.Socket[bytes]]) -> Iterator[EngineServer]:
    """An ``ecg-engine`` with the shipped weights on TCP loopback; stopped and joined afterwards."""
    clf = CnnClassifier.load(DEFAULT_WEIGHTS)
    server = EngineServer(clf.backend, clf.rep_cfg, "tcp://127.0.0.1:*", BatcherConfig(latency_budget_s=0.005), ctx)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,), name="engine-server")
    thread.start()
    try:
        assert server.ready.wait(10)
        yield server
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


@needs_weights
def test_remote_engine_gives_the_alarms_and_annotations_of_the_in_process_one(
    mitdb: Path, tmp_path: Path, engine_server: EngineServer, ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    records = ("208", "201")
    local = drive(mitdb, records, 90.0, RUNS[0], tmp_path / "local", CnnClassifier.load(DEFAULT_WEIGHTS))
    alarms = local[1]
    assert alarms.keys() == set(records), "the stretch must raise alarms on both streams"
    assert any(e[1] in ("vrun", "couplet", "bigeminy", "trigeminy") for e in alarms["208"]), "ectopy, from labels"
    with RemoteClassifier(engine_server.bound_endpoint or "", timeout_s=30.0, context=ctx) as remote:
        assert remote.name.startswith("remote/")
        for k, run in enumerate((RUNS[0], RUNS[2])):  # real time, and as fast as it goes
            assert drive(mitdb, records, 90.0, run, tmp_path / f"remote{k}", remote) == local, run
    assert engine_server.requests > 0 and engine_server.errors == engine_server.failed_batches == 0


# ------------------------------------------------------------------ one stream or hundreds


def run_streams(
    x: np.ndarray, fs: float, ids: list[str], out: Path, classifier: BeatClassifier, chunk: int = 360
) -> tuple[dict[str, bytes], dict[str, list[tuple[object, ...]]]]:
    """The ``.mon`` files and clinical alarm transitions, by stream, of ``x`` sent by one device per id: a frame
    of ``chunk`` samples from every device each turn (interleaved, as they arrive), a second of wall time apart."""
    devices = [frames_of(x, fs, stream=sid, chunk=chunk) for sid in ids]
    clock = FakeClock()
    config = MonitorConfig(alarm_log=None, engine_thread=False, annotations=out, silence_s=60.0)
    monitor = Monitor(
        Source(endpoint=f"inproc://streams-{out.name}"), config, classifier=classifier, clock=clock, record_alarms=True
    )
    for turn in zip(*devices, strict=True):
        monitor.process(turn)
        clock.advance(chunk / fs)
    for _ in range(200):  # the last batches come due and the streams finish
        if all(s.finished for s in monitor.streams.states.values()):
            break
        clock.advance(0.5)
        monitor.process()
    assert len(monitor.streams.states) == len(ids)
    assert all(s.finished for s in monitor.streams.states.values())
    assert not monitor.batcher.stats.shed, "no beat may be shed: the comparison is of labelled beats"
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.mon"))}
    assert len(files) == len(ids)
    alarms: dict[str, list[tuple[object, ...]]] = {sid: [] for sid in ids}
    for e in monitor.alarm_events:
        if e.category == "clinical":
            alarms[e.stream].append(transition(e)[1:])  # without the stream id
    return files, alarms


def check_many_streams(mitdb: Path, tmp_path: Path, record: str, n: int, classifier: BeatClassifier) -> None:
    """``n`` devices sending the first minute of ``record``: each stream's annotations and alarms are those of
    the record sent alone."""
    x, fs = lead_mv(mitdb, record, 60.0)
    alone_files, alone_alarms = run_streams(x, fs, ["bed-0"], tmp_path / "alone", classifier)
    (annotations,) = alone_files.values()
    (alarms,) = alone_alarms.values()
    assert alarms, "the stretch must raise alarms for the comparison to mean anything"
    ids = [f"bed-{k}" for k in range(n)]
    files, by_stream = run_streams(x, fs, ids, tmp_path / f"many{n}", classifier)
    assert set(files) == {f"{sid}.mon" for sid in ids}
    for sid in ids:
        assert files[f"{sid}.mon"] == annotations, sid
        assert by_stream[sid] == alarms, sid


def test_each_of_200_streams_gives_what_it_gives_alone(mitdb: Path, tmp_path: Path) -> None:
    check_many_streams(mitdb, tmp_path, "203", 200, RuleClassifier())  # SVT, then atrial fibrillation


@needs_weights
def test_trained_labels_of_a_stream_do_not_depend_on_the_streams_sharing_its_batches(
    mitdb: Path, tmp_path: Path
) -> None:
    """With the CNN the batches mix the beats of every stream: a stream's labels, and so its couplets and
    frequent PVCs (208), are still those it gets alone."""
    check_many_streams(mitdb, tmp_path, "208", 24, CnnClassifier.load(DEFAULT_WEIGHTS))


@pytest.mark.slow
def test_each_of_1000_streams_gives_what_it_gives_alone(mitdb: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    check_many_streams(mitdb, tmp_path, "203", 1000, RuleClassifier())
    print(f"1000 streams of 60 s: {time.perf_counter() - t0:.1f} s")
