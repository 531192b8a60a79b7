"""The engine as its own process: ``ecg-engine --bind ENDPOINT`` serves monitors over ZeroMQ.

Monitors connect DEALER sockets to the engine's ROUTER; the engine batches the
beats of every monitor together with the same :class:`Batcher` the monitor
uses in-process, so many CPU monitors can share one GPU.

Protocol (version 1), every message multipart, header first (UTF-8 JSON):

* ``{"v": 1, "type": "hello"}`` -> ``{"v": 1, "type": "hello", "representation":
  {...}, "backend": NAME}``: the client learns the window rate and length.
* ``{"v": 1, "type": "classify", "id": ID, "n": N, "samples": S, "streams": [N
  stream ids]}`` + ``N*S`` float32 windows (little-endian, at the
  representation's rate) + ``N*5`` float32 RR features -> ``{"v": 1, "type":
  "labels", "id": ID, "n": N}`` + N ASCII class letters (N, S, V, F, Q); a beat
  the engine had to shed under overload comes back as Q (unclassified), counted
  in the batcher's statistics.
* Anything malformed -> ``{"v": 1, "type": "error", "id": ID or null,
  "reason": TEXT}``; the engine carries on serving everyone else.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from engine._backends import Backend
from engine._batcher import Batcher, BatcherConfig
from engine._model import CLASSES, N_RR, rr_features
from engine._representation import RepresentationConfig, resample_windows
from engine._types import Beat
from monitor.errors import EcgMonitorError

if TYPE_CHECKING:
    from monitor.transport import CurveConfig

__all__ = ["EngineServer", "EngineUnavailable", "RemoteClassifier", "main"]

log = logging.getLogger(__name__)
VERSION = 1
MAX_REQUEST_BEATS = 4096


class EngineUnavailable(EcgMonitorError):
    """The remote engine did not answer in time, or refused the request."""


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
    rr: np.ndarray
    labels: bytearray
    left: int


def _header(**kw: Any) -> bytes:
    return json.dumps({"v": VERSION, **kw}, separators=(",", ":")).encode()


class EngineServer:
    """Serves classification requests on a ROUTER socket; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        rep_cfg: RepresentationConfig,
        endpoint: str,
        batcher: BatcherConfig | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveConfig | None = None,
    ) -> None:
        self.curve = curve  # CURVE server keys: only authorized monitors are served
        self.backend = backend
        self.rep_cfg = rep_cfg
        self.endpoint = endpoint
        self.batcher: Batcher[_Item] = Batcher(batcher)
        self.ctx = context or zmq.Context.instance()
        self.ready = threading.Event()
        self.bound_endpoint: str | None = None
        self.requests = 0
        self.errors = 0
        self._pending: dict[tuple[bytes, int], _Request] = {}

    def run(self, stop: threading.Event) -> None:
        from monitor.transport import Authenticator, secure_bind

        auth = Authenticator(self.ctx, self.curve).start() if self.curve is not None else None
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, 64 * 1024 * 1024)
        try:
            self.bound_endpoint = secure_bind(sock, self.endpoint, self.curve, auth)
        except BaseException:
            sock.close()
            if auth is not None:
                auth.stop()
            raise
        log.info("serving on %s with the %s backend", self.bound_endpoint, self.backend.name)
        self.ready.set()
        try:
            while not stop.is_set():
                timeout = 100
                due = self.batcher.next_deadline()
                if due is not None:
                    timeout = min(timeout, max(0, math.ceil(1000 * (due - time.monotonic()))))
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
            if auth is not None:
                auth.stop()

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
                    [identity, _header(type="hello", representation=asdict(self.rep_cfg), backend=self.backend.name)]
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
            if len(body) != 3 or len(body[1]) != 4 * n * samples or len(body[2]) != 4 * n * N_RR:
                raise ValueError("payload sizes do not match n, samples and the RR features")
            windows = np.frombuffer(body[1], dtype="<f4").reshape(n, samples)
            rr = np.frombuffer(body[2], dtype="<f4").reshape(n, N_RR)
            if not (np.isfinite(windows).all() and np.isfinite(rr).all()):
                raise ValueError("windows and RR features must be finite")
        except (ValueError, IndexError) as exc:
            self._error(sock, identity, rid if isinstance(rid, int) else None, str(exc))
            return
        self.requests += 1
        key = (identity, rid)
        self._pending[key] = _Request(identity, rid, windows, rr, bytearray(b"?" * n), n)
        now = time.monotonic()
        for i, stream in enumerate(streams):
            shed = self.batcher.on_beat(_Item(stream, now, key, i))
            if shed is not None:  # overload: that beat goes back unclassified
                self._label(sock, shed, "Q")

    def _label(self, sock: zmq.Socket[bytes], it: _Item, label: str) -> None:
        req = self._pending[it.key]
        req.labels[it.index] = ord(label)
        req.left -= 1
        if req.left == 0:
            del self._pending[it.key]
            sock.send_multipart(
                [req.identity, _header(type="labels", id=req.rid, n=len(req.labels)), bytes(req.labels)]
            )

    def _run_batches(self, sock: zmq.Socket[bytes]) -> None:
        while (batch := self.batcher.on_deadline(time.monotonic())) is not None:
            t0 = time.perf_counter()
            windows = np.stack([self._pending[it.key].windows[it.index] for it in batch])
            rr = np.stack([self._pending[it.key].rr[it.index] for it in batch])
            labels = self.backend.infer(windows, rr).argmax(axis=1)
            self.batcher.on_done(len(batch), time.perf_counter() - t0)
            for it, lab in zip(batch, labels.tolist(), strict=True):
                self._label(sock, it, CLASSES[lab])


class RemoteClassifier:
    """A :class:`BeatClassifier` that sends batches to an ``ecg-engine`` and waits for the labels."""

    def __init__(
        self,
        endpoint: str,
        timeout_s: float = 2.0,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveConfig | None = None,
    ) -> None:
        from monitor.transport import secure_connect

        self.ctx = context or zmq.Context.instance()
        self.endpoint = endpoint
        self.timeout_ms = max(1, round(1000 * timeout_s))
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        try:
            secure_connect(self.sock, endpoint, curve)
        except BaseException:
            self.sock.close()
            raise
        self._ids = itertools.count(1)
        try:
            hello = self._call([_header(type="hello")], None)
        except BaseException:
            self.sock.close()
            raise
        self.rep_cfg = RepresentationConfig(**hello["representation"])
        self.name = f"remote/{hello.get('backend', '?')}"

    def close(self) -> None:
        self.sock.close()

    def _call(self, parts: list[bytes], rid: int | None) -> dict[str, Any]:
        self.sock.send_multipart(parts)
        while True:
            if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
                raise EngineUnavailable(f"engine at {self.endpoint} did not answer within {self.timeout_ms} ms")
            reply = self.sock.recv_multipart()
            header = json.loads(reply[0])
            if header.get("type") == "error":
                raise EngineUnavailable(f"engine refused the request: {header.get('reason')}")
            if rid is None or header.get("id") == rid:
                header["_payload"] = reply[1:]
                return dict(header)
            # a late answer to an earlier request that timed out: skip it

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        if not beats:
            return []
        windows = resample_windows([b.window for b in beats], [b.fs for b in beats], self.rep_cfg)
        rr = rr_features(beats)
        rid = next(self._ids)
        header = _header(
            type="classify", id=rid, n=len(beats), samples=self.rep_cfg.n_samples, streams=[b.stream for b in beats]
        )
        reply = self._call([header, windows.astype("<f4").tobytes(), rr.astype("<f4").tobytes()], rid)
        labels = reply["_payload"][0].decode("ascii")
        if len(labels) != len(beats):
            raise EngineUnavailable(f"engine answered {len(labels)} labels for {len(beats)} beats")
        return list(labels)


def build_parser() -> argparse.ArgumentParser:
    from monitor.cli._options import env_default

    p = argparse.ArgumentParser(prog="ecg-engine", description=__doc__.split("\n")[0])
    p.add_argument("--bind", default=env_default("ENGINE_BIND", "tcp://127.0.0.1:5560"), help="ROUTER endpoint")
    p.add_argument("--model", default=env_default("MODEL"), help="weights file (default: the shipped model)")
    p.add_argument("--backend", default=env_default("BACKEND", "auto"), help="auto | cpu | cuda | compiled | tensorrt")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for the cpu backend")
    p.add_argument("--latency-budget-ms", type=float, default=float(env_default("LATENCY_BUDGET_MS", 50)))
    p.add_argument(
        "--keys", default=env_default("KEYS"), help="CURVE keys folder (ecg-keys init): serve authorized monitors only"
    )
    p.add_argument("--log-level", default=env_default("LOG_LEVEL", "info"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from engine._classifier import DEFAULT_WEIGHTS, CnnClassifier
    from monitor.cli._options import setup_logging, stop_on_signals

    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        clf = CnnClassifier.load(args.model or DEFAULT_WEIGHTS, args.backend, args.threads)
        from monitor.transport import CurveConfig

        batcher = BatcherConfig(latency_budget_s=args.latency_budget_ms / 1000)
        curve = CurveConfig.server(args.keys) if args.keys else None
        server = EngineServer(clf.backend, clf.rep_cfg, args.bind, batcher, curve=curve)
    except (OSError, ValueError, EcgMonitorError) as exc:
        print(f"ecg-engine: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    stop_on_signals(stop.set)
    try:
        server.run(stop)
    except zmq.ZMQError as exc:
        print(f"ecg-engine: error: --bind {args.bind}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
