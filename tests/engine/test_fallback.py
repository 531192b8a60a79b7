"""A worker's classifier: the shared engine service first, the local model while the service is away."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import wfdb
import zmq

from engine import (
    DEFAULT_WEIGHTS,
    BatcherConfig,
    Beat,
    CnnClassifier,
    EngineServer,
    EngineUnavailable,
    FallbackClassifier,
    RemoteClassifier,
)
from monitor import beats_of_signal


class Fake:
    """Labels every beat with ``label``; fails while ``down`` is set."""

    def __init__(self, label: str, model_id: str | None = None) -> None:
        self.label, self.model_id, self.name = label, model_id, f"fake-{label}"
        self.down = False
        self.closed = False

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        if self.down:
            raise EngineUnavailable("did not answer")
        return [self.label] * len(beats)

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _beats(n: int) -> list[Beat]:
    import numpy as np

    window = np.zeros(10, dtype=np.float32)
    return [Beat("a", 100 * i, 360.0, None, None, None, None, window, 100 * i, 0.0) for i in range(n)]


def test_the_service_labels_while_up_and_the_local_model_every_batch_it_cannot() -> None:
    clock = Clock()
    service = Fake("V", model_id="abc")
    connects: list[float] = []

    def connect() -> Fake:
        connects.append(clock.t)
        if service.down and not connects[1:]:
            raise EngineUnavailable("no hello")
        return service

    clf = FallbackClassifier(connect, Fake("N"), model_id="abc", retry_s=10.0, clock=clock)
    assert clf.classify(_beats(3)) == ["V"] * 3
    service.down = True
    assert clf.classify(_beats(2)) == ["N"] * 2  # the failed batch is labelled locally, no beat lost
    assert service.closed and clf.failures["EngineUnavailable"] == 1
    service.down = False
    clock.t = 9.9
    assert clf.classify(_beats(1)) == ["N"]  # not tried again before retry_s
    assert len(connects) == 1
    clock.t = 10.0
    assert clf.classify(_beats(1)) == ["V"]
    assert len(connects) == 2 and clf.batches == {"remote": 2, "local": 2}


def test_an_unreachable_service_is_retried_after_retry_s_only() -> None:
    clock = Clock()
    tries: list[float] = []

    def connect() -> Fake:
        tries.append(clock.t)
        raise EngineUnavailable("no hello")

    clf = FallbackClassifier(connect, Fake("N"), retry_s=5.0, clock=clock)
    for t in (0.0, 1.0, 4.9, 5.0, 6.0, 10.0):
        clock.t = t
        assert clf.classify(_beats(1)) == ["N"]
    assert tries == [0.0, 5.0, 10.0]
    assert clf.classify([]) == []


def test_a_service_with_other_weights_is_refused() -> None:
    other = Fake("V", model_id="other")
    clf = FallbackClassifier(lambda: other, Fake("N"), model_id="mine", clock=Clock())
    assert clf.classify(_beats(2)) == ["N", "N"]
    assert other.closed and clf.batches == {"local": 1} and clf.failures["EngineUnavailable"] == 1


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")
def test_over_tcp_the_labels_are_the_same_whether_the_service_or_the_local_model_made_them(
    ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path
) -> None:
    local = CnnClassifier.load(DEFAULT_WEIGHTS)
    model_id = str(local.card["weights_sha256"])
    srv = EngineServer(
        local.backend, local.rep_cfg, "tcp://127.0.0.1:*", BatcherConfig(latency_budget_s=0.02), ctx, model_id=model_id
    )
    stop = threading.Event()
    thread = threading.Thread(target=srv.run, args=(stop,))
    thread.start()
    assert srv.ready.wait(5)
    endpoint = srv.bound_endpoint or ""
    with RemoteClassifier(endpoint, timeout_s=5, context=ctx) as probe:
        assert probe.model_id == model_id  # the hello names the weights served
    clf = FallbackClassifier(
        lambda: RemoteClassifier(endpoint, timeout_s=0.5, context=ctx), local, model_id=model_id, retry_s=3600
    )
    x = wfdb.rdrecord(str(mitdb / "208"), channels=[0], sampto=360 * 60).p_signal[:, 0]
    beats = beats_of_signal(x, 360.0, stream="208")
    half = len(beats) // 2
    try:
        first = clf.classify(beats[:half])
        assert clf.batches == {"remote": 1}
        stop.set()
        thread.join(5)
        second = clf.classify(beats[half:])  # the service is gone: 0.5 s, then the local model
        assert clf.batches == {"remote": 1, "local": 1}
    finally:
        stop.set()
        thread.join(5)
        clf.close()
    assert first + second == local.classify(beats)
