"""Cluster mode on a 3-node NATS cluster: duplicate frames, partition ownership, durable alarm reading."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import numpy as np
import pytest
import zmq

from monitor.alarms import AlarmEvent
from monitor.cluster import (
    FRAMES_STREAM,
    OWNERS_BUCKET,
    AlarmPublisher,
    AlarmReader,
    ClusterLayout,
    FrameFilter,
    Gateway,
    LocalCluster,
    Worker,
    WorkerSettings,
    decode_envelope,
    encode_envelope,
    ensure_layout,
    lease_of,
)
from monitor.errors import FrameError
from monitor.testing import ecg, frames_of
from tests.cluster._nats import connected

LAYOUT = ClusterLayout(partitions=4, replicas=3)


def test_envelope_round_trip_and_rejects_garbage() -> None:
    assert decode_envelope(encode_envelope([b"{}", b"abc"])) == [b"{}", b"abc"]
    assert decode_envelope(encode_envelope([b"{}"])) == [b"{}"]
    with pytest.raises(FrameError):
        decode_envelope(b"\x00\x00")
    with pytest.raises(FrameError):
        decode_envelope(b"\x00\x00\x00\x09{}")


def test_frame_filter_counts_rejections_and_names_each_frame() -> None:
    x, _ = ecg([0.8] * 5, 250.0, seed=1)
    messages = frames_of(x, 250.0, stream="bed.1", boot=7)
    f = FrameFilter()
    for m in messages:
        f.on_message(m)
    f.on_message([b"not json", b""])
    taken = f.take()
    assert len(taken) == len(messages)
    assert taken[0][0] == "ecg.frames.bed=2E1"
    assert taken[0][1] == "bed.1/7/0"
    assert f.rejected == {"json": 1}


async def _gateway_twice(cluster: LocalCluster) -> tuple[int, int, int]:
    x, _ = ecg([0.8] * 10, 250.0, seed=2)
    messages = frames_of(x, 250.0, stream="bed-1", boot="b1")
    gateway = Gateway(cluster.urls, "tcp://127.0.0.1:*", layout=LAYOUT)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, ready))
    await asyncio.wait_for(ready.wait(), 30)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    assert gateway.bound_endpoint is not None
    push.connect(gateway.bound_endpoint)
    for m in messages + messages:  # the device resends everything (a reconnect)
        push.send_multipart(m)
    for _ in range(200):
        if gateway.published + gateway.duplicates >= 2 * len(messages):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    push.close()
    ctx.term()
    async with connected(cluster.urls) as nc:
        info = await nc.jetstream().stream_info(FRAMES_STREAM)
    return len(messages), gateway.duplicates, info.state.messages


def test_gateway_stores_a_resent_frame_once(cluster: LocalCluster) -> None:
    sent, duplicates, stored = asyncio.run(_gateway_twice(cluster))
    assert duplicates == sent
    assert stored == sent


async def _two_workers(cluster: LocalCluster) -> list[dict[str, Any]]:
    settings = WorkerSettings(lease_s=1.5, renew_s=0.25, window_s=30.0)
    workers = [Worker(cluster.urls, layout=LAYOUT, settings=settings, name=n) for n in ("wa", "wb")]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        for _ in range(300):
            await asyncio.sleep(0.1)
            if sorted(len(w.runners) for w in workers) == [2, 2]:
                break
        assert sorted(len(w.runners) for w in workers) == [2, 2], [sorted(w.runners) for w in workers]
        assert set(workers[0].runners).isdisjoint(workers[1].runners)
        async with connected(cluster.urls) as nc:
            kv = await nc.jetstream().key_value(OWNERS_BUCKET)
            leases = [lease_of((await kv.get(f"p{p}")).value) for p in range(LAYOUT.partitions)]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return leases


def test_two_workers_share_the_partitions(cluster: LocalCluster) -> None:
    leases = asyncio.run(_two_workers(cluster))
    owners = [lease["owner"] for lease in leases]
    assert sorted(owners) == ["wa", "wa", "wb", "wb"]


async def _read(reader: AlarmReader, want: int, tries: int = 10) -> list[dict[str, Any]]:
    """Up to ``want`` transitions: a busy machine may hand them over in separate fetches."""
    out: list[dict[str, Any]] = []
    for _ in range(tries):
        out += await reader.read(timeout=2)
        if len(out) >= want:
            break
    return out


def _event(stream: str, state: str, sample: int) -> AlarmEvent:
    return AlarmEvent(stream, "asystole", state, 1000, sample, 250.0, "Asystole")


async def _bridge_away(cluster: LocalCluster) -> tuple[list[str], list[str], list[str]]:
    async with connected(cluster.urls) as nc:
        js = nc.jetstream(timeout=10.0)
        _, open_kv = await ensure_layout(js, LAYOUT)
        publisher = AlarmPublisher(js, open_kv, 0, "w")
        await publisher.adopt(lambda stream, kind: None)
        bridge = AlarmReader(js, "bridge-1")
        await publisher.publish([_event("bed-1", "onset", 1000)])
        first = [f"{r['stream']}:{r['state']}" for r in await bridge.read(timeout=2)]
        await bridge.close()
    # the bridge is away while alarms go on
    async with connected(cluster.urls) as nc2, connected(cluster.urls) as nc3:
        js2 = nc2.jetstream(timeout=10.0)
        publisher.js = js2
        publisher.kv = await js2.key_value("ecg-open")
        await publisher.publish([_event("bed-1", "end", 3000), _event("bed-2", "onset", 1000)])
        await publisher.publish([_event("bed-2", "onset", 1000)])  # the same transition again: one is kept
        back = AlarmReader(nc3.jetstream(timeout=10.0), "bridge-1")
        missed = [f"{r['stream']}:{r['state']}" for r in await _read(back, 2)]
        again = [f"{r['stream']}:{r['state']}" for r in await back.read(timeout=0.5)]
        open_keys = []
        for key in ("p0.bed-1.asystole", "p0.bed-2.asystole"):
            try:
                await publisher.kv.get(key)
                open_keys.append(key)
            except nats.js.errors.KeyNotFoundError:
                pass
    return first, missed, again + sorted(open_keys)


def test_a_bridge_that_was_away_gets_what_it_missed_once(cluster: LocalCluster) -> None:
    first, missed, rest = asyncio.run(_bridge_away(cluster))
    assert first == ["bed-1:onset"]
    assert missed == ["bed-1:end", "bed-2:onset"]
    assert rest == ["p0.bed-2.asystole"]  # nothing more to read; the open alarm is in the bucket


async def _handed_over(js: Any, open_kv: Any, partition: int, stream: str) -> AlarmPublisher:
    """An old owner of ``partition`` raises an alarm on ``stream`` at sample 1000; the new owner adopts it."""
    old = AlarmPublisher(js, open_kv, partition, "old")
    await old.adopt(lambda stream, kind: None)
    await old.publish([_event(stream, "onset", 1000)])
    new = AlarmPublisher(js, open_kv, partition, "new")
    await new.adopt(lambda stream, kind: None)
    return new


async def _adopt(cluster: LocalCluster) -> list[dict[str, Any]]:
    """A new owner adopts an open alarm: its later onset is not raised again, its end carries the first id."""
    async with connected(cluster.urls) as nc:
        js = nc.jetstream(timeout=10.0)
        _, open_kv = await ensure_layout(js, LAYOUT)
        new = await _handed_over(js, open_kv, 1, "bed-3")  # not active after the rebuild ...
        shifted = AlarmEvent("bed-3", "asystole", "onset", 1010, 1400, 250.0, "Asystole")
        await new.publish([shifted])  # ... raised again (from a different onset): the same episode
        ended = AlarmEvent("bed-3", "asystole", "end", 1010, 5000, 250.0, "Asystole", end_reason="beats")
        await new.publish([ended])
        assert await new.end_orphans(lambda s: 6000) == 0
        return await _read(AlarmReader(js, "adopt"), 2)


def test_an_adopted_alarm_is_neither_raised_twice_nor_lost(cluster: LocalCluster) -> None:
    records = asyncio.run(_adopt(cluster))
    assert [(r["alarm_id"], r["state"], r["worker"]) for r in records] == [
        ("bed-3:asystole:1000", "onset", "old"),
        ("bed-3:asystole:1000", "end", "new"),
    ]


def test_an_adopted_alarm_gone_after_the_rebuild_is_ended(cluster: LocalCluster) -> None:
    async def run() -> list[dict[str, Any]]:
        async with connected(cluster.urls) as nc:
            js = nc.jetstream(timeout=10.0)
            _, open_kv = await ensure_layout(js, LAYOUT)
            new = await _handed_over(js, open_kv, 2, "bed-4")
            assert await new.end_orphans(lambda s: 7000) == 1
            records = await _read(AlarmReader(js, "gone"), 2)
            with pytest.raises(nats.js.errors.KeyNotFoundError):
                await open_kv.get("p2.bed-4.asystole")
            return records

    records = asyncio.run(run())
    assert [(r["state"], r["sample"]) for r in records] == [("onset", 1000), ("end", 7000)]
    assert json.loads(json.dumps(records[1]))["end_reason"] == "ended while its worker was replaced"
    assert np.all([r["alarm_id"] == "bed-4:asystole:1000" for r in records])


class _FlakySub:
    """A pull subscription whose consumer has no leader for its first fetches (an election)."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.fetches = 0
        self.unsubscribed = False

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        self.fetches += 1
        if self.failures:
            raise self.failures.pop(0)
        raise nats.errors.TimeoutError

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


def test_the_durable_reader_waits_out_a_consumer_without_a_leader() -> None:
    reader = AlarmReader(None, "bridge")  # type: ignore[arg-type]
    sub = _FlakySub([nats.js.errors.ServiceUnavailableError(), nats.errors.NoRespondersError()])
    reader._sub = sub

    async def run() -> list[list[Any]]:
        return [await reader.fetch(timeout=0.01) for _ in range(3)]

    assert asyncio.run(run()) == [[], [], []]
    assert (sub.fetches, reader.unavailable, sub.unsubscribed) == (3, 2, False)  # the same consumer, read on


def test_the_durable_reader_makes_a_deleted_consumer_again() -> None:
    reader = AlarmReader(None, "bridge")  # type: ignore[arg-type]
    sub = _FlakySub([nats.js.errors.NotFoundError()])
    reader._sub = sub
    assert asyncio.run(reader.fetch(timeout=0.01)) == []
    assert sub.unsubscribed and reader._sub is None  # opened again by the next fetch
