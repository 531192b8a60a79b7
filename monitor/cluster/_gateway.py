"""An ingest gateway: today's ZeroMQ PULL intake (CURVE and per-key authorization with ``--keys``), each frame
validated by the wire decoder, each accepted one published to JetStream for the partition's owner.

A frame is published to ``ecg.frames.<stream>`` with message id ``<stream>/<boot>/<seq>``: a device (or a
gateway retrying after a lost acknowledgement, or a second gateway the device fails over to) sending it twice
within the duplicate window stores it once. Malformed and refused frames are counted by reason and never
published. Each publish is acknowledged before the next (retried with the same id for up to a minute, whatever
the error: a stream with no leader answers "no responders" at once), so a slow or re-electing
cluster holds the PULL socket (devices' PUSH queues fill) instead of losing frames here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import nats
import zmq
from nats.aio.client import Client

from monitor.app import Intake
from monitor.cluster._layout import ClusterLayout, encode_envelope, ensure_layout, frame_subject
from monitor.errors import FrameError
from monitor.protocol import decode_frame

__all__ = ["FrameFilter", "Gateway"]

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


class Gateway:
    """Binds ``endpoint`` (``tcp://...``) and publishes what devices send to the cluster at ``servers``."""

    def __init__(
        self,
        servers: list[str],
        endpoint: str,
        *,
        layout: ClusterLayout | None = None,
        keys: Any = None,
        max_pending: int = 2000,
    ) -> None:
        self.servers = servers
        self.layout = layout or ClusterLayout()
        self.filter = FrameFilter()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.intake = Intake(self.ctx, endpoint, keys)
        self.max_pending = max_pending
        self.published = 0
        self.duplicates = 0
        self.failed = 0
        self.bound_endpoint: str | None = None
        self._nc: Client | None = None

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        self._nc = await nats.connect(self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
        js = self._nc.jetstream(timeout=5.0)
        await ensure_layout(js, self.layout)
        self.bound_endpoint = self.intake.open(cast(Any, self.filter))
        if ready is not None:
            ready.set()
        sock = self.intake.sock
        assert sock is not None
        try:
            while not stop.is_set():
                if not sock.poll(0, zmq.POLLIN):
                    await asyncio.sleep(0.005)
                    continue
                self.intake.receive(cast(Any, self.filter), limit=self.max_pending)
                await self._publish(js, self.filter.take())
        finally:
            self.intake.close()
            await self._nc.drain()
            self.ctx.term()

    async def _publish(self, js: Any, frames: list[tuple[str, str, list[bytes]]]) -> None:
        for subject, msg_id, parts in frames:
            payload = encode_envelope(parts)
            deadline = time.monotonic() + PUBLISH_RETRY_S
            for attempt in itertools.count(1):  # retried with the same id: the stream stores it once
                try:
                    ack = await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
                except (TimeoutError, nats.errors.Error) as exc:  # no stream leader (an election), a server gone
                    if time.monotonic() > deadline:
                        self.failed += 1
                        log.error("gateway: frame %s not published within %.0f s", msg_id, PUBLISH_RETRY_S)
                        break
                    log.warning("gateway: publish %s (try %d): %s", msg_id, attempt, exc)
                    await asyncio.sleep(0.25)
                    continue
                if ack.duplicate:
                    self.duplicates += 1
                else:
                    self.published += 1
                break
