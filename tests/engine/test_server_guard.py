"""An engine whose backend fails on a batch answers that batch's monitors with an error and serves the next;
engine and client of different context-feature widths refuse each other with a clear error."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import zmq
from numpy.typing import NDArray

from engine import (
    N_CONTEXT,
    BatcherConfig,
    Beat,
    EngineServer,
    EngineUnavailable,
    RemoteClassifier,
    RepresentationConfig,
)


class Flaky:
    """Fails while ``failing`` is set (with the given exception type), else says V for every beat."""

    name = "flaky"

    def __init__(self) -> None:
        self.failing: type[Exception] | None = None
        self.calls = 0

    def infer(self, windows: NDArray[np.float32], context: NDArray[np.float32]) -> NDArray[np.float32]:
        assert context.shape == (len(windows), N_CONTEXT)
        self.calls += 1
        if self.failing is not None:
            raise self.failing("backend out of memory")
        out = np.zeros((len(windows), 5), np.float32)
        out[:, 2] = 1.0
        return out


class ManualClock:
    """The server's clock: moves only when a test moves it (deadlines fall due at once when it is far ahead)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def beats(n: int) -> list[Beat]:
    w = np.zeros(288, np.float32)
    return [Beat("s", 100 * i, 360.0, 0.8, 0.8, 0.8, 0.8, w, 0, ready_at=0.0) for i in range(n)]


@pytest.fixture
def served(ctx: zmq.Context[zmq.Socket[bytes]]) -> Iterator[tuple[EngineServer, Flaky]]:
    backend = Flaky()
    # a zero budget: every batch is due as soon as its beats are queued, whatever the clock says
    config = BatcherConfig(latency_budget_s=1e-9, margin_s=0.0)
    server = EngineServer(backend, RepresentationConfig(), "inproc://engine-guard", config, ctx, clock=ManualClock())
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    assert server.ready.wait(5)
    yield server, backend
    stop.set()
    thread.join(5)


def test_a_failing_batch_gets_an_error_reply_and_serving_goes_on(
    served: tuple[EngineServer, Flaky], ctx: zmq.Context[zmq.Socket[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    server, backend = served
    with RemoteClassifier("inproc://engine-guard", timeout_s=5, context=ctx) as client:
        assert client.name == "remote/flaky"
        assert client.classify(beats(3)) == ["V"] * 3
        backend.failing = MemoryError
        with caplog.at_level(logging.ERROR, logger="engine._service"):
            for _ in range(2):
                with pytest.raises(EngineUnavailable, match="MemoryError: backend out of memory"):
                    client.classify(beats(4))
        backend.failing = None
        assert client.classify(beats(2)) == ["V"] * 2
    assert server.failed_batches == 2 and server.failures == {"MemoryError": 2} and server.errors == 0
    assert len([r for r in caplog.records if "MemoryError" in r.getMessage()]) == 1  # logged once per kind
    assert not server._pending


def test_a_client_dropped_unclosed_closes_its_socket(
    served: tuple[EngineServer, Flaky], ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    client = RemoteClassifier("inproc://engine-guard", timeout_s=5, context=ctx)
    sock = client.sock
    del client
    assert sock.closed


def test_a_client_sending_the_old_rr_width_is_refused_with_a_clear_error(
    served: tuple[EngineServer, Flaky], ctx: zmq.Context[zmq.Socket[bytes]]
) -> None:
    server, _ = served
    n, samples = 2, RepresentationConfig().n_samples
    old = ctx.socket(zmq.DEALER)
    try:
        old.setsockopt(zmq.LINGER, 0)
        old.connect("inproc://engine-guard")
        old.send_multipart([json.dumps({"v": 1, "type": "hello"}).encode()])
        assert old.poll(5000)
        assert json.loads(old.recv_multipart()[0])["context"] == N_CONTEXT
        header = {"v": 1, "type": "classify", "id": 7, "n": n, "samples": samples, "streams": ["a", "b"]}
        windows = np.zeros((n, samples), "<f4").tobytes()
        old.send_multipart([json.dumps(header).encode(), windows, np.ones((n, 5), "<f4").tobytes()])
        assert old.poll(5000)
        reply = json.loads(old.recv_multipart()[0])
    finally:
        old.close()
    assert reply["type"] == "error" and reply["id"] == 7
    assert f"takes {N_CONTEXT} context features" in reply["reason"] and "sent 5" in reply["reason"]
    assert server.errors == 1 and server.requests == 0


def test_a_client_refuses_an_engine_that_names_no_context_width(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    """An older engine (RR features alone) answers hello without ``context``: the client says so and closes."""
    old = ctx.socket(zmq.ROUTER)
    old.bind("inproc://old-engine")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if old.poll(50):
                identity, _ = old.recv_multipart()
                hello = {"v": 1, "type": "hello", "representation": {}, "backend": "cpu"}
                old.send_multipart([identity, json.dumps(hello).encode()])

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        expected = f"takes 5 context features per beat, this client sends {N_CONTEXT}"
        with pytest.raises(EngineUnavailable, match=expected):
            RemoteClassifier("inproc://old-engine", timeout_s=5, context=ctx)
    finally:
        stop.set()
        thread.join(5)
        old.close()
