"""The monitor's ingest socket: bind (with CURVE and per-key authorization when keys are set), receive, drain."""

from __future__ import annotations

import itertools
from pathlib import Path

import zmq

from monitor.ingest import Ingest
from monitor.protocol import MAX_HEADER_BYTES, MAX_SAMPLES_PER_FRAME
from monitor.transport import Authenticator, CurveConfig, secure_bind, sender_of

__all__ = ["MAX_MESSAGE_BYTES", "Intake"]

#: Largest message the ingest socket accepts (bigger ones are dropped by ZeroMQ).
MAX_MESSAGE_BYTES = MAX_HEADER_BYTES + MAX_SAMPLES_PER_FRAME * 32 * 8 + 1024
_instance = itertools.count()


class Intake:
    """One ZeroMQ PULL socket feeding :class:`Ingest`.

    Devices connect to ``endpoint`` (bound as given; authenticated and encrypted
    with CURVE when ``keys`` is set); an in-process replayer connects to an
    ``inproc://`` endpoint of the same context. With keys, every message is
    received with its ZAP ``User-Id`` and the key's policy decides whether it
    may push that stream (refusals are counted by reason in the ingest's
    rejections, never ingested).
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str | None, keys: Path | None) -> None:
        self.ctx = context
        self.external = endpoint is not None
        self.endpoint = endpoint or f"inproc://ecg-monitor-ingest-{next(_instance)}"
        self.keys = keys
        self.curve: CurveConfig | None = None
        self.auth: Authenticator | None = None
        self.sock: zmq.Socket[bytes] | None = None
        self.bound_endpoint: str | None = None

    def open(self, ingest: Ingest) -> str:
        """Start the authenticator (with keys) and bind; returns the bound endpoint."""
        if self.keys is not None:
            self.curve = CurveConfig.server(self.keys)
            self.auth = Authenticator(self.ctx, self.curve).start()
            ingest.authorize = self.auth.authorizer.check_push
        sock = self.sock = self.ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.setsockopt(zmq.RCVHWM, 10000)
        if self.external:  # devices connect here: authenticated when keys are configured
            self.bound_endpoint = secure_bind(sock, self.endpoint, self.curve, self.auth)
        else:  # the in-process replayer
            sock.bind(self.endpoint)
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.bound_endpoint

    def receive(self, ingest: Ingest, limit: int = 2000) -> int:
        """Hand up to ``limit`` queued messages to ``ingest`` without waiting; returns how many."""
        sock = self.sock
        if sock is None:
            return 0
        secured = self.auth is not None
        n = 0
        for n in range(1, limit + 1):
            try:
                if secured:  # frames, for the User-Id that names the sender's key
                    frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    ingest.on_message([f.bytes for f in frames], sender=sender_of(frames[0]))
                else:
                    ingest.on_message(sock.recv_multipart(flags=zmq.NOBLOCK))
            except zmq.Again:
                return n - 1
        return n

    def pending(self) -> bool:
        return self.sock is not None and bool(self.sock.poll(0, zmq.POLLIN))

    def reload_keys(self) -> None:
        """Pick up keys and policies changed with ``ecg-keys`` (at most every few seconds)."""
        if self.auth is not None:
            self.auth.reload_if_due()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
