"""The gateway's batched publishing: per-bed order, duplicates, back-pressure, counted failures."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats
import pytest
import zmq

from monitor.cluster import FRAMES_STREAM, ClusterLayout, Gateway, LocalCluster, decode_envelope, frame_subject
from monitor.cluster._gateway import publish_rounds
from monitor.protocol import decode_frame
from monitor.testing import ecg, frames_of
from tests.cluster._nats import connected

LAYOUT = ClusterLayout(partitions=4, replicas=3)


class _Ack:
    def __init__(self, duplicate: bool) -> None:
        self.duplicate = duplicate


class FakeJetStream:
    """Acknowledges each publish a moment later; ``fail`` (message id -> failures before success, -1 always),
    ``silent`` (ids never acknowledged the first time). Records what was stored, in order, and what was in
    flight at once."""

    def __init__(self, fail: dict[str, int] | None = None, silent: set[str] | None = None) -> None:
        self.fail = dict(fail or {})
        self.silent = set(silent or ())
        self.stored: list[str] = []
        self.inflight: dict[str, str] = {}  # message id -> subject
        self.max_inflight = 0
        self.bed_overlap = 0  # a publish of a bed while another of the same bed was in flight

    async def publish_async(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[Any]:
        msg_id = headers["Nats-Msg-Id"]
        assert decode_envelope(payload)
        if subject in self.inflight.values():
            self.bed_overlap += 1
        self.inflight[msg_id] = subject
        self.max_inflight = max(self.max_inflight, len(self.inflight))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(lambda _: self.inflight.pop(msg_id, None))
        if msg_id in self.silent:
            self.silent.discard(msg_id)
            return future  # never answered: the gateway's timeout cancels it
        loop.call_later(0.001, self._answer, future, msg_id)
        return future

    def _answer(self, future: asyncio.Future[Any], msg_id: str) -> None:
        if future.done():
            return
        left = self.fail.get(msg_id, 0)
        if left != 0:
            self.fail[msg_id] = left - 1
            future.set_exception(nats.js.errors.ServiceUnavailableError())
            return
        duplicate = msg_id in self.stored
        if not duplicate:
            self.stored.append(msg_id)
        future.set_result(_Ack(duplicate))


def _frames(beds: int, per_bed: int) -> list[tuple[str, str, list[bytes]]]:
    """Bed 0's frames in a burst first, then the other beds round robin."""
    out = [(frame_subject("bed-0"), f"bed-0/-/{k}", [b"{}", b"x"]) for k in range(per_bed)]
    for k in range(per_bed):
        for b in range(1, beds):
            out.append((frame_subject(f"bed-{b}"), f"bed-{b}/-/{k}", [b"{}", b"x"]))
    return out


def _gateway(**kw: Any) -> Gateway:
    gateway = Gateway(["nats://127.0.0.1:1"], "tcp://127.0.0.1:*", **kw)
    gateway.ctx.term()
    return gateway


def _per_bed(ids: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for msg_id in ids:
        bed, _, seq = msg_id.split("/")
        out.setdefault(bed, []).append(int(seq))
    return out


def test_rounds_hold_one_frame_of_each_bed_in_arrival_order() -> None:
    frames = _frames(3, 4)
    rounds = publish_rounds(frames)
    assert len(rounds) == 4
    for k, batch in enumerate(rounds):
        assert [f[1] for f in batch] == [f"bed-{b}/-/{k}" for b in range(3)]
    assert sorted(f[1] for batch in rounds for f in batch) == sorted(f[1] for f in frames)


def test_batch_keeps_each_beds_order_with_several_frames_in_flight() -> None:
    js = FakeJetStream()
    gateway = _gateway()
    asyncio.run(gateway.publish(js, _frames(20, 5)))
    assert gateway.published == 100 and gateway.failed == 0
    assert js.max_inflight == 20  # a round at once, not one frame at a time
    assert js.bed_overlap == 0
    assert all(seqs == list(range(5)) for seqs in _per_bed(js.stored).values())


def test_a_retry_cannot_reorder_a_bed() -> None:
    # bed-3's frame 1 fails twice, bed-5's frame 2 is never acknowledged the first time
    js = FakeJetStream(fail={"bed-3/-/1": 2}, silent={"bed-5/-/2"})
    gateway = _gateway(ack_timeout_s=0.05, retry_wait_s=0.01)
    asyncio.run(gateway.publish(js, _frames(8, 4)))
    assert gateway.published == 32 and gateway.failed == 0
    assert gateway.stats.retried == 3
    assert all(seqs == list(range(4)) for seqs in _per_bed(js.stored).values())


def test_a_frame_failing_every_try_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    js = FakeJetStream(fail={"bed-1/-/0": -1})
    gateway = _gateway(tries=3, retry_wait_s=0.01)
    with caplog.at_level(logging.WARNING, logger="monitor.cluster._gateway"):
        asyncio.run(gateway.publish(js, _frames(2, 3)))
    assert gateway.failed == 1
    assert gateway.published == 5
    assert "bed-1/-/0" not in js.stored
    assert any(
        "not published after 3 tries" in r.getMessage() and "bed-1/-/0" in r.getMessage() for r in caplog.records
    )
    assert gateway.stats.line().startswith("received 6, published 5, duplicates 0, failed 1")


async def _through_cluster(cluster: LocalCluster) -> tuple[Gateway, list[int], list[tuple[str, int]]]:
    beds = {f"bed-{b}": frames_of(ecg([0.8] * 6, 250.0, seed=b)[0], 250.0, stream=f"bed-{b}") for b in range(4)}
    gateway = Gateway(cluster.urls, "tcp://127.0.0.1:*", layout=LAYOUT, window=16)
    batches: list[int] = []
    publish = gateway.publish

    async def recording(js: Any, frames: list[tuple[str, str, list[bytes]]]) -> None:
        batches.append(len(frames))
        await publish(js, frames)

    gateway.publish = recording  # type: ignore[method-assign]
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 30)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    assert gateway.bound_endpoint is not None
    push.connect(gateway.bound_endpoint)
    messages = beds["bed-0"] + [
        m for k in range(len(beds["bed-1"])) for s in ("bed-1", "bed-2", "bed-3") for m in beds[s][k : k + 1]
    ]
    for m in messages + beds["bed-2"][:5]:  # five frames sent again
        push.send_multipart(m)
    total = len(messages) + 5
    for _ in range(400):
        if gateway.published + gateway.duplicates + gateway.failed >= total:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    push.close()
    ctx.term()
    async with connected(cluster.urls) as nc:
        js = nc.jetstream(timeout=10.0)
        sub = await js.pull_subscribe("ecg.part.*.*", stream=FRAMES_STREAM)
        stored: list[tuple[str, int]] = []
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            for msg in msgs:
                frame = decode_frame(decode_envelope(msg.data))
                stored.append((frame.stream, frame.seq))
    return gateway, batches, stored


def test_gateway_stores_each_beds_frames_once_in_order(cluster: LocalCluster) -> None:
    gateway, batches, stored = asyncio.run(_through_cluster(cluster))
    assert gateway.duplicates == 5 and gateway.failed == 0
    assert max(batches) <= 16  # the socket is read a window at a time: the rest waits in ZeroMQ
    per_bed: dict[str, list[int]] = {}
    for stream, seq in stored:
        per_bed.setdefault(stream, []).append(seq)
    assert sorted(per_bed) == ["bed-0", "bed-1", "bed-2", "bed-3"]
    for seqs in per_bed.values():
        assert seqs == list(range(len(seqs)))
    assert len(stored) == gateway.published
