"""The engine under supervision: labels batches on a thread, and survives an engine that fails.

:class:`EngineWorker` runs ``classify`` on one batch at a time in a thread, so
the ingest loop never waits for a batch to be labelled. :class:`EngineSupervisor`
sits on top of it (or labels in-line when not threaded) and keeps the monitor
going while the engine fails: a failed batch comes back with every beat ``Q``
(unclassified), and the engine is retried after a back-off (1 s after the first
failure, doubling up to ``max_backoff_s`` while it keeps failing), rebuilt by a
factory when one is given. Beats that arrive while it backs off are answered
``Q`` at once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from engine._types import Beat, BeatClassifier

__all__ = ["EngineResult", "EngineSupervisor", "EngineWorker", "WorkerResult"]

log = logging.getLogger(__name__)

_ids = itertools.count()
_POLL_SLICE_MS = 100  # how often a wait for the thread checks that it is still alive


@dataclass(frozen=True)
class WorkerResult:
    """A finished batch: its labels, or the exception the engine raised."""

    beats: list[Beat]
    labels: list[str] | None
    error: Exception | None
    seconds: float


class _WakeChannel:
    """An inproc PAIR pair: the thread sends one message on ``notify`` per finished batch, the owner polls ``wake``."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        endpoint = f"inproc://ecg-monitor-engine-worker-{next(_ids)}"
        self.wake = context.socket(zmq.PAIR)
        self.wake.setsockopt(zmq.LINGER, 0)
        self.wake.bind(endpoint)
        self.notify = context.socket(zmq.PAIR)
        self.notify.setsockopt(zmq.LINGER, 0)
        self.notify.connect(endpoint)

    def drain(self) -> None:
        while True:
            try:
                self.wake.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return

    def close(self) -> None:
        self.notify.close()
        self.wake.close()


class EngineWorker:
    """Runs ``classify`` on one batch at a time in a thread.

    The owner submits a batch when :attr:`busy` is False and polls :attr:`wake`
    (a ZeroMQ PAIR socket that receives one message per finished batch) with its
    ingest socket, then takes the results with :meth:`take`. PyTorch releases
    the GIL while it computes, so ingest and detection go on meanwhile. An
    exception from ``classify`` comes back as a result; a worker thread that dies
    anyway is reported by :attr:`alive` and replaced by the owner. A ``channel``
    given by the owner outlives the worker (the owner closes it), so a
    replacement keeps the socket the owner polls.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        classify: Callable[[list[Beat]], list[str]],
        *,
        channel: _WakeChannel | None = None,
    ) -> None:
        self.classify = classify
        self._own_channel = channel is None
        self._channel = channel if channel is not None else _WakeChannel(context)
        self.wake = self._channel.wake
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
        self._channel.drain()
        out = []
        while self._results:
            out.append(self._results.popleft())
        if out:
            self._running = None
        return out

    def wait(self, timeout: float | None = None) -> list[WorkerResult]:
        """Wait for the batch in flight (if any; not for a thread that died) and return every finished result."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running is not None and not self._results and self.alive:
            slice_ms = _POLL_SLICE_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                slice_ms = min(slice_ms, max(1, math.ceil(1000 * left)))
            self.wake.poll(slice_ms, zmq.POLLIN)
        return self.take()

    def close(self, timeout: float = 5.0) -> None:
        if self.alive:
            with contextlib.suppress(queue.Full):
                self._jobs.put(None, timeout=timeout)
            self._thread.join(timeout)
        if self._own_channel:
            self._channel.close()

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
            self._channel.notify.send(b"")


@dataclass(frozen=True)
class EngineResult:
    """A batch back from the engine, labelled or not.

    ``labels`` holds one class per beat: ``Q`` for every beat when the engine
    failed on the batch or was backing off. ``seconds`` is the batch's service
    time (for :meth:`Batcher.on_done`), 0.0 when it was not run. ``failure``
    is ``"TypeName: message"`` when this batch failed (an exception, the wrong
    number of labels, a thread that died, a factory that could not rebuild the
    engine), None otherwise.
    """

    beats: list[Beat]
    labels: list[str]
    seconds: float
    failure: str | None

    @classmethod
    def unclassified(cls, beats: list[Beat], failure: str | None = None, seconds: float = 0.0) -> EngineResult:
        return cls(beats, ["Q"] * len(beats), seconds, failure)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class EngineSupervisor:
    """Runs a :class:`BeatClassifier` for its owner's loop and keeps health figures on it.

    Threaded (the default), :meth:`submit` hands a batch to an :class:`EngineWorker`
    and returns at once; the owner polls :attr:`wake` with its other sockets and
    takes finished batches with :meth:`collect`. Not threaded, :meth:`submit`
    labels the batch there and then. Either way a batch comes back as an
    :class:`EngineResult`, and a failure (see :class:`EngineResult`) marks the
    engine :attr:`down`: later batches are answered ``Q`` at once until the retry
    is due, when the classifier is rebuilt by ``factory`` (the old one closed if
    it has a ``close()``) or, without a factory, simply tried again. Health
    changes are read in order with :meth:`transitions`. ``clock`` times the
    back-off; service times are measured with :func:`time.perf_counter`.
    """

    def __init__(
        self,
        classifier: BeatClassifier,
        *,
        factory: Callable[[], BeatClassifier] | None = None,
        clock: Callable[[], float] = time.monotonic,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        threaded: bool = True,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not (math.isfinite(max_backoff_s) and max_backoff_s >= 1.0):
            raise ValueError(f"max_backoff_s must be >= 1 s (the first back-off), got {max_backoff_s!r}")
        self.classifier = classifier
        self.factory = factory
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self._down = False
        self._problem: str | None = None
        self._errors = 0
        self._retry_at = -math.inf
        self._backoff = 1.0
        self._transitions: list[tuple[str, str | None]] = []
        self._ctx = (context or zmq.Context.instance()) if threaded else None
        self._channel: _WakeChannel | None = None
        self._worker: EngineWorker | None = None
        if self._ctx is not None:
            self._channel = _WakeChannel(self._ctx)
            self._worker = self._new_worker()

    # ------------------------------------------------------------ figures
    @property
    def name(self) -> str:
        return self.classifier.name

    @property
    def wake(self) -> zmq.Socket[bytes] | None:
        """Poll it for POLLIN: a threaded batch is ready to :meth:`collect` (None when not threaded).

        The same socket for the supervisor's whole life, even when a dead thread is replaced.
        """
        return self._channel.wake if self._channel is not None else None

    @property
    def busy(self) -> bool:
        """A batch is in flight on the thread."""
        return self._worker is not None and self._worker.busy

    @property
    def down(self) -> bool:
        """The last batch run failed (the engine backs off until its retry is due)."""
        return self._down

    @property
    def problem(self) -> str | None:
        """``"TypeName: message"`` of the last failure while :attr:`down`, else None."""
        return self._problem

    @property
    def errors(self) -> int:
        """Failures so far (batches that failed, and factories that could not rebuild the engine)."""
        return self._errors

    def ready(self) -> bool:
        """Not busy: a :meth:`submit` would be run, or answered, at once."""
        return not self.busy

    # ------------------------------------------------------------ batches
    def submit(self, beats: list[Beat]) -> list[EngineResult]:
        """Label ``beats``: see the class docstring. Raises RuntimeError when :attr:`busy`."""
        if self.busy:
            raise RuntimeError("the engine is busy with another batch; submit when ready()")
        now = self.clock()
        if not self._usable(now):
            return [EngineResult.unclassified(beats)]
        if self._rebuild_due(now):
            try:
                self._rebuild()
            except Exception as exc:
                self._failed(_describe(exc), now)
                return [EngineResult.unclassified(beats, _describe(exc))]
        if self._worker is not None:
            self._worker.submit(beats)
            return []
        t0 = time.perf_counter()
        try:
            labels: list[str] | None = self.classifier.classify(beats)
            error: Exception | None = None
        except Exception as exc:
            labels, error = None, exc
        return [self._arrived(beats, labels, error, time.perf_counter() - t0, now)]

    def collect(self, wait: bool = False) -> list[EngineResult]:
        """Finished threaded batches (``wait``: also the one in flight). A thread that died is replaced and
        its batch returned ``Q`` with the failure ``"RuntimeError: the engine thread died"``."""
        worker = self._worker
        if worker is None:
            return []
        finished = worker.wait() if wait else worker.take()
        if not finished and worker.busy and not worker.alive:
            beats = worker.running or []
            worker.close(timeout=0.1)
            self._worker = self._new_worker()
            failure = _describe(RuntimeError("the engine thread died"))
            self._failed(failure, self.clock())
            return [EngineResult.unclassified(beats, failure)]
        now = self.clock()
        return [self._arrived(r.beats, r.labels, r.error, r.seconds, now) for r in finished]

    def transitions(self) -> list[tuple[str, str | None]]:
        """Health changes since the last call, in order: ``("down", problem)`` when the engine fails while up,
        ``("up", None)`` when a batch succeeds after it was down."""
        out, self._transitions = self._transitions, []
        return out

    def close(self) -> None:
        """Stop the thread (after the batch in flight) and close the wake sockets. The classifier is not closed:
        its owner (who may hold :attr:`classifier`, rebuilt or not) closes it."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # ------------------------------------------------------------ health
    def _new_worker(self) -> EngineWorker:
        assert self._ctx is not None and self._channel is not None
        return EngineWorker(self._ctx, self._classify, channel=self._channel)

    def _classify(self, beats: list[Beat]) -> list[str]:
        return self.classifier.classify(beats)  # the current classifier, rebuilt or not

    def _usable(self, now: float) -> bool:
        return not self._down or now >= self._retry_at

    def _rebuild_due(self, now: float) -> bool:
        return self._down and self.factory is not None and now >= self._retry_at

    def _rebuild(self) -> None:
        assert self.factory is not None
        close = getattr(self.classifier, "close", None)
        if callable(close):
            close()
        self.classifier = self.factory()

    def _arrived(
        self, beats: list[Beat], labels: list[str] | None, error: Exception | None, seconds: float, now: float
    ) -> EngineResult:
        if error is None and (labels is None or len(labels) != len(beats)):
            got = "no" if labels is None else len(labels)
            error = RuntimeError(f"the engine returned {got} labels for {len(beats)} beats")
        if error is not None or labels is None:
            failure = _describe(error or RuntimeError("no labels"))
            self._failed(failure, now)
            return EngineResult.unclassified(beats, failure, seconds)
        if self._down:
            log.warning("engine recovered after %d failure(s)", self._errors)
            self._down = False
            self._problem = None
            self._transitions.append(("up", None))
        return EngineResult(beats, list(labels), seconds, None)

    def _failed(self, failure: str, now: float) -> None:
        self._errors += 1
        self._backoff = min(self.max_backoff_s, self._backoff * 2) if self._down else 1.0
        self._retry_at = now + self._backoff
        self._problem = failure
        if not self._down:
            log.error("engine failed (%s); beats go unclassified, retrying", failure)
            self._down = True
            self._transitions.append(("down", failure))
