"""The bridge's socket loop: :func:`serve` reads a bus into an :class:`AlertBridge` and an output.

Joining and catching up follow the clone pattern (see :mod:`monitor.outputs._bridge`): whenever the bridge
wants a snapshot (on joining, after a gap or a restart) it is asked for on the monitor's snapshot endpoint
and applied before the bus is read again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import zmq

from monitor.outputs._bridge import AlertBridge, BridgeEvent, CommandRunner
from monitor.transport import CurveConfig, secure_connect

__all__ = ["EventOutput", "serve", "snapshot_dealer"]


def snapshot_dealer(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, curve: CurveConfig | None = None
) -> zmq.Socket[bytes]:
    """A DEALER connected to a monitor's snapshot endpoint (snapshots, acknowledgements); raises for a bad
    endpoint, leaving no socket open."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        secure_connect(dealer, endpoint, curve)
    except BaseException:
        dealer.close(linger=0)
        raise
    return dealer


class EventOutput(Protocol):
    """Where :func:`serve` puts what it received: :class:`BridgeOutput`, or a central station's ward."""

    runner: CommandRunner | None

    def emit(self, event: BridgeEvent) -> None: ...

    def say(self, text: str) -> None: ...


def serve(
    sock: zmq.Socket[bytes],
    bridge: AlertBridge,
    output: EventOutput,
    *,
    count: int | None = None,
    idle_timeout: float | None = None,
    stop: threading.Event | None = None,
    tick: float = 0.2,
    snapshot: Callable[[], zmq.Socket[bytes]] | None = None,
    snapshot_timeout: float = 2.0,
) -> str:
    """Receive until ``count`` alarms were shown, ``idle_timeout`` seconds pass without a message, or ``stop``.

    ``snapshot`` opens a socket (a DEALER) connected to the monitor's snapshot endpoint: whenever
    ``bridge.wanted`` names topics (set it before, for the join), their snapshot is asked for and applied
    before the bus is read again. A monitor that does not answer within ``snapshot_timeout`` seconds is
    reported and not asked again. Returns why it ended: ``"count"``, ``"idle"`` or ``"stopped"``.
    """
    stop = stop or threading.Event()
    asker = _SnapshotAsker(snapshot, snapshot_timeout, bridge, output, stop)
    last = time.monotonic()
    try:
        while not stop.is_set():
            if asker.pending:
                left = None if idle_timeout is None else last + idle_timeout - time.monotonic()
                if asker.ask(left):  # a reply came: the monitor is there
                    last = time.monotonic()
            if count is not None and bridge.stats.alarms >= count:
                return "count"
            if output.runner is not None:
                output.runner.reap()
            wait = tick
            if idle_timeout is not None:
                left = last + idle_timeout - time.monotonic()
                if left <= 0:
                    return "idle"
                wait = min(wait, left)
            if not sock.poll(max(1, int(wait * 1000)), zmq.POLLIN):
                continue
            last = time.monotonic()
            while not asker.pending:  # drain what is queued, unless a snapshot is to be asked for first
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                event = bridge.handle(parts)
                if event is not None:
                    output.emit(event)
                if count is not None and bridge.stats.alarms >= count:
                    return "count"
        return "stopped"
    finally:
        asker.close()


class _SnapshotAsker:
    """Asks for the snapshots :attr:`AlertBridge.wanted` names, one request at a time, and applies them."""

    def __init__(
        self,
        factory: Callable[[], zmq.Socket[bytes]] | None,
        timeout: float,
        bridge: AlertBridge,
        output: EventOutput,
        stop: threading.Event,
    ) -> None:
        self.factory = factory
        self.timeout = timeout
        self.bridge = bridge
        self.output = output
        self.stop = stop
        self.sock: zmq.Socket[bytes] | None = None

    @property
    def pending(self) -> bool:
        """Whether a snapshot is wanted and can be asked for."""
        return bool(self.bridge.wanted) and self.factory is not None

    def ask(self, limit: float | None = None) -> bool:
        """Ask for the wanted snapshot and apply it; waits at most the timeout (and ``limit`` seconds).
        True when a reply came; without one, snapshots are not asked for again."""
        bridge = self.bridge
        prefixes, bridge.wanted = bridge.wanted, []
        if self.factory is None or not prefixes:
            return False
        if self.sock is None:
            self.sock = self.factory()
        self.sock.send_multipart(bridge.snapshot_request(prefixes))
        wait = self.timeout if limit is None else max(0.0, min(self.timeout, limit))
        deadline = time.monotonic() + wait
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if self.sock.poll(max(1, int(min(left, 0.2) * 1000)) if left > 0 else 0, zmq.POLLIN):
                for event in bridge.apply_snapshot(self.sock.recv_multipart()):
                    self.output.emit(event)
                return True
            if left <= 0:
                break
        if not self.stop.is_set():
            self.output.say(
                f"no snapshot from the monitor within {wait:g} s; going on without one "
                "(alarms active before this bridge joined are unknown)"
            )
        self.factory = None
        self.close()
        return False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
