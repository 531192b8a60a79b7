"""The engine as a service: :class:`EngineServer` serves monitors over ZeroMQ (``ecg-engine``).

Monitors connect DEALER sockets to the engine's ROUTER; the engine batches the
beats of every monitor together with the same :class:`Batcher` the monitor
uses in-process, so many CPU monitors can share one GPU.

Protocol (version 1), every message multipart, header first (UTF-8 JSON):

* ``{"v": 1, "type": "hello"}`` -> ``{"v": 1, "type": "hello", "representation":
  {...}, "backend": NAME, "context": C, "model": SHA256}``: the client learns the
  window rate and length, the SHA-256 of the weights served (empty when the
  engine was not told), and how many context features per beat the engine's model takes
  (C = 12: :data:`engine.CONTEXT_FEATURES`, rhythm and shape against the
  patient's dominant beat; an engine that names none is an older one, which
  took the 5 RR features alone, and the client refuses it).
* ``{"v": 1, "type": "classify", "id": ID, "n": N, "samples": S, "streams": [N
  stream ids]}`` + ``N*S`` float32 windows (little-endian, at the
  representation's rate) + ``N*C`` float32 context features -> ``{"v": 1, "type":
  "labels", "id": ID, "n": N}`` + N ASCII class letters (N, S, V, F, Q); a beat
  the engine had to shed under overload comes back as Q (unclassified), counted
  in the batcher's statistics. Context features of another width (an older
  client sending 5 RR features) are refused with an error naming both widths.
* Anything malformed -> ``{"v": 1, "type": "error", "id": ID or null,
  "reason": TEXT}``; the engine carries on serving everyone else.
* A batch the backend fails on -> that error reply to every request with a
  beat in the batch; the engine carries on with the next batches.

Sockets are bound and connected through hooks (plain ``bind``/``connect`` by
default), so a caller can secure them (CURVE) without the engine knowing how.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Protocol

import numpy as np
import zmq
from numpy.typing import NDArray

from engine._batcher import Batcher, BatcherConfig
from engine._errors import EngineUnavailable
from engine._model import CLASSES, N_CONTEXT, N_RR, context_features
from engine._representation import RepresentationConfig, resample_windows
from engine._types import Beat

__all__ = [
    "BindHook",
    "ConnectHook",
    "EngineServer",
    "RemoteClassifier",
    "ServedBackend",
    "plain_bind",
    "plain_connect",
]

log = logging.getLogger(__name__)
VERSION = 1
MAX_REQUEST_BEATS = 4096

#: Binds a socket to an endpoint and returns the endpoint actually bound (a wildcard port resolved).
BindHook = Callable[["zmq.Socket[bytes]", str], str]
#: Connects a socket to an endpoint.
ConnectHook = Callable[["zmq.Socket[bytes]", str], None]


def plain_bind(sock: zmq.Socket[bytes], endpoint: str) -> str:
    """The default :data:`BindHook`: ``sock.bind(endpoint)``, returning ``LAST_ENDPOINT``."""
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def plain_connect(sock: zmq.Socket[bytes], endpoint: str) -> None:
    """The default :data:`ConnectHook`: ``sock.connect(endpoint)``."""
    sock.connect(endpoint)


class ServedBackend(Protocol):
    """What the server needs of a backend (:class:`engine._backends.Backend` is one)."""

    name: str

    def infer(self, windows: NDArray[np.float32], context: NDArray[np.float32]) -> NDArray[np.float32]: ...


@dataclass
class _Item:
    stream: str
    ready_at: float
    key: tuple[bytes, int]
    index: int


@dataclass
class _Request:
    identity: bytes
    rid: int
    windows: np.ndarray
    context: np.ndarray
    labels: bytearray
    left: int


def _header(**kw: Any) -> bytes:
    return json.dumps({"v": VERSION, **kw}, separators=(",", ":")).encode()


class EngineServer:
    """Serves classification requests on a ROUTER socket; see the module docstring.

    ``bind`` binds the socket (e.g. as a CURVE server) and returns the bound
    endpoint; ``clock`` gives the times the batcher's deadlines are reckoned in.
    A backend that raises fails only the batch it was given: its requests get
    an error reply, the failure is counted in :attr:`failures` (per exception
    type, logged once per type) and serving goes on.
    """

    def __init__(
        self,
        backend: ServedBackend,
        rep_cfg: RepresentationConfig,
        endpoint: str,
        batcher: BatcherConfig | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        *,
        bind: BindHook = plain_bind,
        clock: Callable[[], float] = time.monotonic,
        model_id: str = "",
    ) -> None:
        self.backend = backend
        self.model_id = model_id
        self.rep_cfg = rep_cfg
        self.endpoint = endpoint
        self.batcher: Batcher[_Item] = Batcher(batcher)
        self.ctx = context or zmq.Context.instance()
        self.clock = clock
        self._bind = bind
        self.ready = threading.Event()
        self.bound_endpoint: str | None = None
        self.requests = 0
        self.errors = 0  # malformed requests refused
        self.failed_batches = 0  # batches the backend failed on
        self.failures: Counter[str] = Counter()  # exception type name -> batches failed with it
        self._pending: dict[tuple[bytes, int], _Request] = {}

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; :attr:`ready` is set once the socket is bound."""
        sock = self.ctx.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, 64 * 1024 * 1024)
            self.bound_endpoint = self._bind(sock, self.endpoint)
            log.info("serving on %s with the %s backend", self.bound_endpoint, self.backend.name)
            self.ready.set()
            while not stop.is_set():
                timeout = 100
                due = self.batcher.next_deadline()
                if due is not None:
                    timeout = min(timeout, max(0, math.ceil(1000 * (due - self.clock()))))
                if sock.poll(timeout, zmq.POLLIN):
                    for _ in range(1000):
                        try:
                            parts = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._on_message(sock, parts)
                self._run_batches(sock)
        finally:
            sock.close()

    def _error(self, sock: zmq.Socket[bytes], identity: bytes, rid: Any, reason: str) -> None:
        self.errors += 1
        sock.send_multipart([identity, _header(type="error", id=rid, reason=reason)])

    def _on_message(self, sock: zmq.Socket[bytes], parts: list[bytes]) -> None:
        identity, body = parts[0], parts[1:]
        rid: Any = None
        try:
            header = json.loads(body[0]) if body else None
            if not isinstance(header, dict) or header.get("v") != VERSION:
                raise ValueError(f"header must be a JSON object with v={VERSION}")
            rid = header.get("id")
            kind = header.get("type")
            if kind == "hello":
                sock.send_multipart(
                    [
                        identity,
                        _header(
                            type="hello",
                            representation=asdict(self.rep_cfg),
                            backend=self.backend.name,
                            context=N_CONTEXT,
                            model=self.model_id,
                        ),
                    ]
                )
                return
            if kind != "classify":
                raise ValueError(f"unknown request type {kind!r}")
            n, samples, streams = header.get("n"), header.get("samples"), header.get("streams")
            if not isinstance(rid, int) or not isinstance(n, int) or not 1 <= n <= MAX_REQUEST_BEATS:
                raise ValueError(f"'id' must be an integer and 'n' in 1..{MAX_REQUEST_BEATS}")
            if samples != self.rep_cfg.n_samples:
                raise ValueError(f"'samples' must be {self.rep_cfg.n_samples} (this engine's window)")
            if not isinstance(streams, list) or len(streams) != n or not all(isinstance(s, str) for s in streams):
                raise ValueError("'streams' must list one stream id per beat")
            if len(body) != 3 or len(body[1]) != 4 * n * samples:
                raise ValueError("payload sizes do not match n, samples and the context features")
            if len(body[2]) != 4 * n * N_CONTEXT:
                if len(body[2]) == 4 * n * N_RR:
                    raise ValueError(
                        f"this engine takes {N_CONTEXT} context features per beat (RR and shape against the "
                        f"patient's dominant beat); the client sent {N_RR} (RR alone: an older client): upgrade it"
                    )
                raise ValueError(f"the context features must be {N_CONTEXT} float32 per beat")
            windows = np.frombuffer(body[1], dtype="<f4").reshape(n, samples)
            context = np.frombuffer(body[2], dtype="<f4").reshape(n, N_CONTEXT)
            if not (np.isfinite(windows).all() and np.isfinite(context).all()):
                raise ValueError("windows and context features must be finite")
        except (ValueError, IndexError) as exc:
            self._error(sock, identity, rid if isinstance(rid, int) else None, str(exc))
            return
        self.requests += 1
        key = (identity, rid)
        self._pending[key] = _Request(identity, rid, windows, context, bytearray(b"?" * n), n)
        now = self.clock()
        for i, stream in enumerate(streams):
            shed = self.batcher.on_beat(_Item(stream, now, key, i))
            if shed is not None:  # overload: that beat goes back unclassified
                self._label(sock, shed, "Q")

    def _label(self, sock: zmq.Socket[bytes], it: _Item, label: str) -> None:
        req = self._pending.get(it.key)
        if req is None:  # its request already failed and was answered
            return
        req.labels[it.index] = ord(label)
        req.left -= 1
        if req.left == 0:
            del self._pending[it.key]
            sock.send_multipart(
                [req.identity, _header(type="labels", id=req.rid, n=len(req.labels)), bytes(req.labels)]
            )

    def _run_batches(self, sock: zmq.Socket[bytes]) -> None:
        while (due := self.batcher.on_deadline(self.clock())) is not None:
            batch = [it for it in due if it.key in self._pending]  # not those of requests that already failed
            if not batch:
                continue
            t0 = time.perf_counter()
            windows = np.stack([self._pending[it.key].windows[it.index] for it in batch])
            context = np.stack([self._pending[it.key].context[it.index] for it in batch])
            try:
                probabilities = self.backend.infer(windows, context)
                labels = [CLASSES[i] for i in np.asarray(probabilities).argmax(axis=1).tolist()]
                if len(labels) != len(batch):
                    raise RuntimeError(f"the backend returned {len(labels)} results for {len(batch)} beats")
            except Exception as exc:  # one bad batch must not stop the engine serving every monitor
                self._batch_failed(sock, batch, exc)
                continue
            self.batcher.on_done(len(batch), time.perf_counter() - t0)
            for it, label in zip(batch, labels, strict=True):
                self._label(sock, it, label)

    def _batch_failed(self, sock: zmq.Socket[bytes], batch: list[_Item], exc: Exception) -> None:
        kind = type(exc).__name__
        if not self.failures[kind]:
            log.error("the %s backend failed on a batch (%s: %s); its requests get an error", self.backend.name,
                      kind, exc)  # fmt: skip
        self.failures[kind] += 1
        self.failed_batches += 1
        reason = f"the engine failed on this batch: {kind}: {exc}"
        for key in dict.fromkeys(it.key for it in batch):
            req = self._pending.pop(key)
            sock.send_multipart([req.identity, _header(type="error", id=req.rid, reason=reason)])


class RemoteClassifier:
    """A :class:`BeatClassifier` that sends batches to an ``ecg-engine`` and waits for the labels.

    ``connect`` connects the DEALER socket (e.g. as a CURVE client). Close it
    with :meth:`close`, or use it as a context manager; one dropped unclosed
    has its socket closed when it is collected or at exit.
    """

    def __init__(
        self,
        endpoint: str,
        timeout_s: float = 2.0,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        *,
        connect: ConnectHook = plain_connect,
    ) -> None:
        self.ctx = context or zmq.Context.instance()
        self.endpoint = endpoint
        self.timeout_ms = max(1, round(1000 * timeout_s))
        self.sock = self.ctx.socket(zmq.DEALER)
        try:
            self.sock.setsockopt(zmq.LINGER, 0)
            connect(self.sock, endpoint)
            self._ids = itertools.count(1)
            hello = self._call([_header(type="hello")], None)
            self.rep_cfg = RepresentationConfig(**hello["representation"])
            if hello.get("context") != N_CONTEXT:
                raise EngineUnavailable(
                    f"engine at {endpoint} takes {hello.get('context', N_RR)} context features per beat, this "
                    f"client sends {N_CONTEXT} (RR and shape against the patient's dominant beat): "
                    "run engine and monitor of the same version"
                )
        except BaseException:
            self.sock.close()
            raise
        self.name = f"remote/{hello.get('backend', '?')}"
        #: the SHA-256 of the weights the engine serves (None from an engine that does not say)
        self.model_id: str | None = str(hello["model"]) if hello.get("model") else None
        # closes the socket when the client is dropped unclosed (or at exit), never leaving it to the collector
        self._finalizer = weakref.finalize(self, self.sock.close)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> RemoteClassifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, parts: list[bytes], rid: int | None) -> dict[str, Any]:
        self.sock.send_multipart(parts)
        while True:
            if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
                raise EngineUnavailable(f"engine at {self.endpoint} did not answer within {self.timeout_ms} ms")
            reply = self.sock.recv_multipart()
            header = json.loads(reply[0])
            answer_id = header.get("id")
            if header.get("type") == "error" and (rid is None or answer_id is None or answer_id == rid):
                raise EngineUnavailable(f"engine refused the request: {header.get('reason')}")
            if rid is None or answer_id == rid:
                header["_payload"] = reply[1:]
                return dict(header)
            # a late answer (or error) to an earlier request that timed out: skip it

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        if not beats:
            return []
        windows = resample_windows([b.window for b in beats], [b.fs for b in beats], self.rep_cfg)
        context = context_features(beats)
        rid = next(self._ids)
        header = _header(
            type="classify", id=rid, n=len(beats), samples=self.rep_cfg.n_samples, streams=[b.stream for b in beats]
        )
        reply = self._call([header, windows.astype("<f4").tobytes(), context.astype("<f4").tobytes()], rid)
        labels = reply["_payload"][0].decode("ascii")
        if len(labels) != len(beats):
            raise EngineUnavailable(f"engine answered {len(labels)} labels for {len(beats)} beats")
        return list(labels)
