"""An ingest gateway: today's ZeroMQ PULL intake (CURVE and per-key authorization with ``--keys``), each frame
validated by the wire decoder, each accepted one published to JetStream for the partition's owner.

A frame is published to ``ecg.frames.<stream>`` with message id ``<stream>/<boot>/<seq>``: a device (or a
gateway retrying after a lost acknowledgement, or a second gateway the device fails over to) sending it twice
within the duplicate window stores it once. Malformed and refused frames are counted by reason and never
published.

Publishing does not wait for each frame's acknowledgement: what the PULL socket holds (at most ``window``
frames) is published at once (``publish_async``) in *rounds*, the first frame of each bed in the batch, then the
second, ...; a round's acknowledgements are all awaited (each at most ``ack_timeout_s``) and its failures
retried with the same id, whatever the error (a stream with no leader, in an election, answers "no responders"
at once), for up to ``retry_for_s`` (a minute) before the next round goes out. So at most one frame of a bed is
in flight and a retry can never store a bed's frame after its successor: each bed's frames are stored in the
order the gateway received them (one connection: NATS keeps its publish order). While a batch is in flight the
socket is not read (back-pressure: devices' PUSH queues fill instead of this process's memory). A frame not
acknowledged by then is counted (``failed``) and logged, never dropped silently; the counters are logged every
``stats_s`` and at exit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import nats
import zmq
from nats.aio.client import Client

from monitor.app import Intake
from monitor.cluster._layout import ClusterLayout, encode_envelope, ensure_layout, frame_subject
from monitor.errors import FrameError
from monitor.protocol import decode_frame

__all__ = ["FrameFilter", "Gateway", "GatewayStats", "publish_rounds"]

log = logging.getLogger(__name__)

PUBLISH_RETRY_S = 60.0  # a publish is retried this long (a stream leader election takes seconds)


class FrameFilter:
    """What the intake hands each message to (in place of the monitor's ingest): decode, authorize, keep."""

    def __init__(self) -> None:
        self.authorize: Any = None  # set by Intake.open with keys: (sender, stream) -> refusal reason or None
        self.accepted: list[tuple[str, str, list[bytes]]] = []  # (subject, message id, parts)
        self.rejected: Counter[str] = Counter()

    def on_message(self, parts: Sequence[bytes], sender: str | None = None) -> None:
        try:
            frame = decode_frame(parts)
        except FrameError as exc:
            self.rejected[exc.reason] += 1
            return
        if self.authorize is not None:
            refused = self.authorize(sender, frame.stream)
            if refused is not None:
                self.rejected[refused] += 1
                return
        msg_id = f"{frame.stream}/{frame.boot or '-'}/{frame.seq}"
        self.accepted.append((frame_subject(frame.stream), msg_id, [bytes(p) for p in parts]))

    def take(self) -> list[tuple[str, str, list[bytes]]]:
        out, self.accepted = self.accepted, []
        return out


def publish_rounds(frames: Sequence[tuple[str, str, list[bytes]]]) -> list[list[tuple[str, str, list[bytes]]]]:
    """``frames`` (subject, message id, parts) in rounds: the k-th round holds the k-th frame of each subject, in
    arrival order, so publishing round after round never has two frames of one bed in flight."""
    rounds: list[list[tuple[str, str, list[bytes]]]] = []
    seen: dict[str, int] = {}
    for frame in frames:
        k = seen.get(frame[0], 0)
        seen[frame[0]] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(frame)
    return rounds


@dataclass
class GatewayStats:
    """What the gateway did with the frames it received (``rejected``: refused before publishing, by reason)."""

    received: int = 0
    published: int = 0
    duplicates: int = 0
    failed: int = 0
    retried: int = 0
    rejected: int = 0

    def line(self) -> str:
        return (
            f"received {self.received}, published {self.published}, duplicates {self.duplicates}, "
            f"failed {self.failed}, retried {self.retried}, rejected {self.rejected}"
        )


_PUBLISH_ERRORS = (nats.errors.Error, TimeoutError)


class Gateway:
    """Binds ``endpoint`` (``tcp://...``) and publishes what devices send to the cluster at ``servers``."""

    def __init__(
        self,
        servers: list[str],
        endpoint: str,
        *,
        layout: ClusterLayout | None = None,
        keys: Any = None,
        window: int = 2000,
        ack_timeout_s: float = 5.0,
        tries: int | None = None,
        retry_for_s: float = PUBLISH_RETRY_S,
        retry_wait_s: float = 0.25,
        stats_s: float = 30.0,
    ) -> None:
        self.servers = servers
        self.layout = layout or ClusterLayout()
        self.filter = FrameFilter()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.intake = Intake(self.ctx, endpoint, keys)
        self.window = window
        self.ack_timeout_s = ack_timeout_s
        self.tries = tries  # None: retried until retry_for_s has passed
        self.retry_for_s = retry_for_s
        self.retry_wait_s = retry_wait_s
        self.stats_s = stats_s
        self.stats = GatewayStats()
        self.bound_endpoint: str | None = None
        self._nc: Client | None = None

    @property
    def published(self) -> int:
        return self.stats.published

    @property
    def duplicates(self) -> int:
        return self.stats.duplicates

    @property
    def failed(self) -> int:
        return self.stats.failed

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        self._nc = await nats.connect(self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
        js = self._nc.jetstream(timeout=5.0, publish_async_max_pending=max(self.window, 1))
        await ensure_layout(js, self.layout)
        self.bound_endpoint = self.intake.open(cast(Any, self.filter))
        if ready is not None:
            ready.set()
        sock = self.intake.sock
        assert sock is not None
        logged_at = time.monotonic()
        try:
            while not stop.is_set():
                if self.stats_s > 0 and time.monotonic() - logged_at >= self.stats_s:
                    logged_at = time.monotonic()
                    self._log_stats()
                if not sock.poll(0, zmq.POLLIN):
                    await asyncio.sleep(0.005)
                    continue
                self.intake.receive(cast(Any, self.filter), limit=self.window)
                await self.publish(js, self.filter.take())
        finally:
            self._log_stats()
            self.intake.close()
            await self._nc.drain()
            self.ctx.term()

    def _log_stats(self) -> None:
        self.stats.rejected = sum(self.filter.rejected.values())
        log.info("gateway: %s", self.stats.line())

    async def publish(self, js: Any, frames: list[tuple[str, str, list[bytes]]]) -> None:
        """Publish ``frames`` (as :meth:`FrameFilter.take` gives them), round by round; return when each one is
        acknowledged or counted failed."""
        self.stats.received += len(frames)
        for batch in publish_rounds(frames):
            await self._round(js, [(subject, msg_id, encode_envelope(parts)) for subject, msg_id, parts in batch])

    async def _round(self, js: Any, todo: list[tuple[str, str, bytes]]) -> None:
        deadline = time.monotonic() + self.retry_for_s
        for attempt in itertools.count(1):
            futures: list[asyncio.Future[Any] | BaseException] = []
            for subject, msg_id, payload in todo:
                try:
                    futures.append(await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id}))
                except _PUBLISH_ERRORS as exc:  # not even sent (connection closed, buffer full while reconnecting)
                    futures.append(exc)
            waiting = [f for f in futures if isinstance(f, asyncio.Future)]
            if waiting:
                _, late = await asyncio.wait(waiting, timeout=self.ack_timeout_s)
                for f in late:  # no acknowledgement in time: it may be stored; the retry's id tells
                    f.cancel()
            again: list[tuple[str, str, bytes]] = []
            first: BaseException | None = None
            for frame, sent in zip(todo, futures, strict=True):
                error = sent if isinstance(sent, BaseException) else _error_of(sent)
                if error is None:
                    ack = cast(asyncio.Future[Any], sent).result()
                    if ack.duplicate:
                        self.stats.duplicates += 1
                    else:
                        self.stats.published += 1
                else:
                    again.append(frame)
                    first = first or error
            if not again:
                return
            todo = again
            if (self.tries is None or attempt < self.tries) and time.monotonic() < deadline:
                self.stats.retried += len(todo)
                log.warning(
                    "gateway: %d frame(s) not acknowledged (try %d), first %s: %s",
                    len(todo), attempt, todo[0][1], _describe(first),
                )  # fmt: skip
                await asyncio.sleep(self.retry_wait_s)
                continue
            self.stats.failed += len(todo)
            log.error(
                "gateway: %d frame(s) not published after %d tries (first %s, last %s)",
                len(todo), attempt, todo[0][1], todo[-1][1],
            )  # fmt: skip
            return


def _error_of(future: asyncio.Future[Any]) -> BaseException | None:
    if future.cancelled():
        return TimeoutError("no acknowledgement in time")
    return future.exception()


def _describe(exc: BaseException | None) -> str:
    return "-" if exc is None else f"{type(exc).__name__}: {exc}"
