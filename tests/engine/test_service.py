"""The engine as a service over TCP loopback: same labels as in-process, several monitors at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import wfdb
import zmq

from engine import DEFAULT_WEIGHTS, BatcherConfig, CnnClassifier, EngineServer, EngineUnavailable, RemoteClassifier
from monitor import beats_of_signal

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")


@pytest.fixture
def server(ctx: zmq.Context[zmq.Socket[bytes]]) -> Iterator[EngineServer]:
    clf = CnnClassifier.load(DEFAULT_WEIGHTS)
    srv = EngineServer(clf.backend, clf.rep_cfg, "tcp://127.0.0.1:*", BatcherConfig(latency_budget_s=0.02), ctx)
    stop = threading.Event()
    thread = threading.Thread(target=srv.run, args=(stop,))
    thread.start()
    assert srv.ready.wait(5)
    yield srv
    stop.set()
    thread.join(5)


def test_two_monitors_share_one_engine_and_get_the_local_labels(
    server: EngineServer, ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path
) -> None:
    local = CnnClassifier.load(DEFAULT_WEIGHTS)
    work = {}
    for rec in ("119", "208"):
        x = wfdb.rdrecord(str(mitdb / rec), channels=[0], sampto=360 * 120).p_signal[:, 0]
        work[rec] = beats_of_signal(x, 360.0, stream=rec)
    results: dict[str, list[str]] = {}

    def monitor(rec: str) -> None:
        with RemoteClassifier(server.bound_endpoint or "", timeout_s=10, context=ctx) as client:
            beats = work[rec]
            results[rec] = [lab for i in range(0, len(beats), 50) for lab in client.classify(beats[i : i + 50])]

    threads = [threading.Thread(target=monitor, args=(rec,)) for rec in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for rec, beats in work.items():
        assert results[rec] == local.classify(beats)
    assert server.requests >= 2 and server.batcher.stats.beats_out == sum(len(b) for b in work.values())


def test_malformed_requests_are_refused_and_serving_goes_on(
    server: EngineServer, ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path
) -> None:
    rogue = ctx.socket(zmq.DEALER)
    try:
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(server.bound_endpoint or "")
        bad = [
            [b"not json"],
            [json.dumps({"v": 1, "type": "classify", "id": 1, "n": 2, "samples": 3, "streams": ["a", "b"]}).encode()],
            [
                json.dumps({"v": 1, "type": "classify", "id": 2, "n": 1, "samples": 102, "streams": ["a"]}).encode(),
                b"\x00" * 8,
                b"",
            ],
        ]
        for parts in bad:
            rogue.send_multipart(parts)
            assert rogue.poll(5000)
            assert json.loads(rogue.recv_multipart()[0])["type"] == "error"
    finally:
        rogue.close()
    assert server.errors == 3
    x = wfdb.rdrecord(str(mitdb / "100"), channels=[0], sampto=360 * 30).p_signal[:, 0]
    with RemoteClassifier(server.bound_endpoint or "", timeout_s=10, context=ctx) as client:
        assert len(client.classify(beats_of_signal(x, 360.0))) > 20


def test_no_engine_gives_a_clear_error(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    with pytest.raises(EngineUnavailable, match="did not answer"):
        RemoteClassifier("tcp://127.0.0.1:1", timeout_s=0.2, context=ctx)


def test_ecg_monitor_with_engine_flag_labels_like_the_local_engine(
    server: EngineServer, mitdb: Path, tmp_path: Path
) -> None:
    from monitor.cli._monitor import main

    common = ["--source", "replay:100", "--speed", "max", "--data-dir", str(mitdb), "--view", "off"]
    assert main([*common, "--annotations", str(tmp_path / "local")]) == 0
    assert main([*common, "--annotations", str(tmp_path / "remote"), "--engine", server.bound_endpoint or ""]) == 0
    local = wfdb.rdann(str(tmp_path / "local" / "100"), "mon")
    remote = wfdb.rdann(str(tmp_path / "remote" / "100"), "mon")
    assert list(remote.sample) == list(local.sample) and remote.symbol == local.symbol
