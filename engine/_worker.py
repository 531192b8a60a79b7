"""The engine on its own thread, so the ingest loop never waits for a batch to be labelled."""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from engine import Beat

__all__ = ["EngineWorker", "WorkerResult"]

_ids = itertools.count()


@dataclass(frozen=True)
class WorkerResult:
    """A finished batch: its labels, or the exception the engine raised."""

    beats: list[Beat]
    labels: list[str] | None
    error: Exception | None
    seconds: float


class EngineWorker:
    """Runs ``classify`` on one batch at a time in a thread.

    The owner submits a batch when :attr:`busy` is False and polls :attr:`wake`
    (a ZeroMQ PAIR socket that receives one message per finished batch) with its
    ingest socket, then takes the results with :meth:`take`. PyTorch releases
    the GIL while it computes, so ingest and detection go on meanwhile. An
    exception from ``classify`` comes back as a result; a worker thread that dies
    anyway is reported by :attr:`alive` and replaced by the owner.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], classify: Callable[[list[Beat]], list[str]]) -> None:
        self.classify = classify
        endpoint = f"inproc://ecg-monitor-engine-worker-{next(_ids)}"
        self.wake = context.socket(zmq.PAIR)
        self.wake.setsockopt(zmq.LINGER, 0)
        self.wake.bind(endpoint)
        self._notify = context.socket(zmq.PAIR)
        self._notify.setsockopt(zmq.LINGER, 0)
        self._notify.connect(endpoint)
        self._jobs: queue.Queue[list[Beat] | None] = queue.Queue(maxsize=1)
        self._results: deque[WorkerResult] = deque()
        self._running: list[Beat] | None = None
        self._thread = threading.Thread(target=self._run, name="ecg-engine-worker", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def running(self) -> list[Beat] | None:
        """The batch being labelled (None when idle)."""
        return self._running

    def submit(self, beats: list[Beat]) -> None:
        if self._running is not None:
            raise RuntimeError("the engine worker is busy")
        self._running = beats
        self._jobs.put(beats)

    def take(self) -> list[WorkerResult]:
        """Finished batches (non-blocking)."""
        while True:
            try:
                self.wake.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
        out = []
        while self._results:
            out.append(self._results.popleft())
        if out:
            self._running = None
        return out

    def wait(self, timeout: float | None = None) -> list[WorkerResult]:
        """Wait for the batch in flight (if any) and return every finished result."""
        if self._running is not None and self.alive:
            self.wake.poll(None if timeout is None else round(1000 * timeout), zmq.POLLIN)
        return self.take()

    def close(self, timeout: float = 5.0) -> None:
        if self.alive:
            with contextlib.suppress(queue.Full):
                self._jobs.put(None, timeout=timeout)
            self._thread.join(timeout)
        self._notify.close()
        self.wake.close()

    def _run(self) -> None:
        while True:
            beats = self._jobs.get()
            if beats is None:
                return
            t0 = time.perf_counter()
            try:
                labels: list[str] | None = self.classify(beats)
                error: Exception | None = None
            except Exception as exc:  # reported to the owner, which raises the technical alarm
                labels, error = None, exc
            self._results.append(WorkerResult(beats, labels, error, time.perf_counter() - t0))
            self._notify.send(b"")
