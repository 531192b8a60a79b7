"""A worker labels beats on the shared engine service, with the local CPU model standing by."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import wfdb
import zmq

from engine import DEFAULT_WEIGHTS, BatcherConfig, CnnClassifier, EngineServer, FallbackClassifier
from monitor import beats_of_signal
from monitor.cluster import build_cluster_parser
from monitor.cluster._cli import _classifier

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")


def _args(*extra: str) -> object:
    return build_cluster_parser().parse_args(["--cluster", "nats://127.0.0.1:4222", "--role", "worker", *extra])


def test_without_engine_the_worker_uses_its_model_or_none() -> None:
    assert _classifier(_args()) is None
    assert isinstance(_classifier(_args("--model", "default")), CnnClassifier)


def test_with_engine_the_service_labels_and_the_local_model_stands_in_when_it_is_gone(
    ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path
) -> None:
    local = CnnClassifier.load(DEFAULT_WEIGHTS)
    srv = EngineServer(
        local.backend,
        local.rep_cfg,
        "tcp://127.0.0.1:*",
        BatcherConfig(latency_budget_s=0.02),
        ctx,
        model_id=str(local.card["weights_sha256"]),
    )
    stop = threading.Event()
    thread = threading.Thread(target=srv.run, args=(stop,))
    thread.start()
    assert srv.ready.wait(5)
    clf = _classifier(_args("--engine", srv.bound_endpoint or ""))  # --model none: the shipped model stands by
    assert isinstance(clf, FallbackClassifier)
    x = wfdb.rdrecord(str(mitdb / "119"), channels=[0], sampto=360 * 60).p_signal[:, 0]
    beats = beats_of_signal(x, 360.0, stream="119")
    try:
        first = clf.classify(beats[:40])
        stop.set()
        thread.join(5)
        rest = clf.classify(beats[40:])
    finally:
        stop.set()
        thread.join(5)
        clf.close()
    assert clf.batches == {"remote": 1, "local": 1}
    assert first + rest == local.classify(beats)
