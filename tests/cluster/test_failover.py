"""Failover with alarms open: a worker SIGKILLed (the standby takes its partitions over), the NATS server leading
the alarm stream SIGKILLed (a new leader is elected, clients reconnect); no alarm lost or raised twice."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections import Counter
from typing import Any, cast

import nats
import numpy as np
import pytest
import zmq

from monitor.alarms import AlarmEvent
from monitor.app import Monitor, MonitorConfig, Source
from monitor.cluster import (
    ALARMS_STREAM,
    FRAMES_STREAM,
    OPEN_BUCKET,
    OWNERS_BUCKET,
    REPLACED_REASON,
    AlarmPublisher,
    AlarmReader,
    ClusterLayout,
    FrameFilter,
    LocalCluster,
    alarm_record,
    encode_envelope,
    ensure_layout,
    move_leaders,
    read_leases,
    stream_leaders,
)
from monitor.testing import ecg, frames_of
from tests.cluster._nats import connected
from tests.cluster.conftest import start_role, start_worker, wait_for

FS = 250.0
PARTITIONS = 4
BEDS = [f"bed-{i}" for i in range(8)]


def _signal(seed: int) -> np.ndarray:
    """20 s of sinus rhythm, 12 s without beats (asystole), 20 s of sinus rhythm."""
    x, _ = ecg([0.8] * 24, FS, tail_s=0.6, seed=seed)
    rng = np.random.default_rng(seed + 1)
    n = round(12 * FS)
    pause = 0.03 * rng.standard_normal(n) + 0.05 * np.sin(2 * np.pi * 0.3 * np.arange(n) / FS)
    y, _ = ecg([0.8] * 24, FS, tail_s=0.6, seed=seed + 2)
    return np.concatenate((x, pause, y))


async def _publish(servers: list[str], messages: list[list[bytes]]) -> None:
    async with connected(servers) as nc:
        js = nc.jetstream(timeout=10.0)
        await ensure_layout(js, ClusterLayout(partitions=PARTITIONS))
        f = FrameFilter()
        for m in messages:
            f.on_message(m)
        for subject, msg_id, parts in f.take():
            await js.publish(subject, encode_envelope(parts), headers={"Nats-Msg-Id": msg_id})


async def _alarms(servers: list[str], durable: str, records: list[dict[str, Any]]) -> None:
    async with connected(servers) as nc:
        reader = AlarmReader(nc.jetstream(timeout=10.0), durable)
        records += await reader.read(timeout=0.5)


WORKER_ARGS = ("--partitions", str(PARTITIONS), "--lease-s", "2", "--silence-s", "120", "--window-s", "120")


def _wait_shared(cluster: LocalCluster) -> None:
    """Make the layout, then wait until workers A and B own two partitions each."""
    asyncio.run(_publish(cluster.urls, []))

    def shared() -> bool:
        owners = Counter(lease.get("owner") for lease in asyncio.run(read_leases(cluster.urls, PARTITIONS)))
        return owners == Counter({"A": 2, "B": 2})

    wait_for(shared, 60, "two workers sharing the partitions")


def _clinical(records: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """The clinical transitions read, as the embedded monitor's reference lists them."""
    return {
        (r["stream"], r["kind"], r["onset_sample"], r["state"])
        for r in records
        if r["category"] == "clinical" and r["state"] != "update"
    }


def test_worker_sigkill_standby_takes_over_no_alarm_lost_or_duplicated(cluster: LocalCluster) -> None:
    workers = {name: start_worker(cluster, name, *WORKER_ARGS) for name in ("A", "B")}
    try:
        _wait_shared(cluster)
        devices = [frames_of(_signal(i), FS, stream=bed, chunk=125, boot="b1") for i, bed in enumerate(BEDS)]
        cut = round(31 * FS / 125)  # 31 s: 11 s into the pause, the asystole alarm is open
        asyncio.run(_publish(cluster.urls, [m for d in devices for m in d[:cut]]))
        records: list[dict[str, Any]] = []

        def onsets() -> set[str]:
            asyncio.run(_alarms(cluster.urls, "test", records))
            return {r["stream"] for r in records if r["kind"] == "asystole" and r["state"] == "onset"}

        wait_for(lambda: onsets() == set(BEDS), 60, "an asystole alarm on every bed")
        victim = "A"
        killed_at = time.time()
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)

        def taken_over() -> bool:
            leases = asyncio.run(read_leases(cluster.urls, PARTITIONS))
            return all(lease.get("owner") == "B" and lease.get("live") for lease in leases)

        wait_for(taken_over, 30, "the standby owning and analysing every partition")
        takeover_s = max(lease["live_at"] for lease in asyncio.run(read_leases(cluster.urls, PARTITIONS))) - killed_at
        assert takeover_s < 10
        asyncio.run(_publish(cluster.urls, [m for d in devices for m in d[cut:]]))

        expected = {e for d in devices for e in _reference(d)}

        def ended() -> bool:  # every transition of the embedded monitor has been read (later ones may still come)
            asyncio.run(_alarms(cluster.urls, "test", records))
            return expected <= _clinical(records)

        wait_for(ended, 60, "every alarm transition of the embedded monitor")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            proc.wait(20)
    transitions = Counter((r["alarm_id"], r["state"], r["sample"]) for r in records if r["state"] != "update")
    assert max(transitions.values()) == 1, [t for t, n in transitions.items() if n > 1]  # none published twice
    assert _clinical(records) == expected  # the embedded monitor's episodes, none lost or extra
    assert any(e[1] == "asystole" for e in expected)


def _reference(messages: list[list[bytes]]) -> set[tuple[str, str, int, str]]:
    """The clinical alarm onsets and ends of the embedded monitor on the same frames."""
    config = MonitorConfig(engine_thread=False, silence_s=120.0, stream_timeout_s=600.0)
    monitor = Monitor(Source(endpoint="inproc://unused"), config, lockstep=True, record_alarms=True)
    for i in range(0, len(messages), 40):
        monitor.process(messages[i : i + 40])
    return {
        (e.stream, e.kind, e.onset_sample, e.state)
        for e in monitor.alarm_events
        if e.category == "clinical" and e.state != "update"
    }


STREAMS = [ALARMS_STREAM, FRAMES_STREAM, f"KV_{OWNERS_BUCKET}", f"KV_{OPEN_BUCKET}"]


async def _leaders(servers: list[str], lead: str | None = None) -> dict[str, str | None]:
    """Each stream's leader (after moving every stream's leadership to ``lead``)."""
    nc = await nats.connect(servers)
    try:
        if lead is not None:
            await move_leaders(nc, STREAMS, lead)
        return await stream_leaders(nc.jetstream(timeout=10.0), STREAMS)
    finally:
        await nc.close()


async def _caught_up(servers: list[str], node: str) -> bool:
    """Whether ``node`` is a current, online replica of every stream again."""
    nc = await nats.connect(servers)
    try:
        js = nc.jetstream(timeout=5.0)
        for name in STREAMS:
            cluster = (await js.stream_info(name)).cluster
            peers = {p.name: p for p in (cluster.replicas or [])} if cluster is not None else {}
            if cluster is None or (cluster.leader != node and not (node in peers and peers[node].current)):
                return False
        return True
    except (nats.errors.Error, TimeoutError):
        return False
    finally:
        await nc.close()


def _push(endpoint: str, messages: list[list[bytes]]) -> None:
    """Devices sending through the gateway (ZeroMQ PUSH, as a bedside device does)."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 10_000)
    push.connect(endpoint)
    for m in messages:
        push.send_multipart(m)
    push.close()
    ctx.term()


def test_stream_leader_sigkill_new_leader_no_alarm_lost_or_duplicated(own_cluster: LocalCluster) -> None:
    cluster = own_cluster
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    procs = {name: start_worker(cluster, name, *WORKER_ARGS) for name in ("A", "B")}
    procs["gateway"] = start_role(cluster, "gateway", "g", "--partitions", str(PARTITIONS), "--ingest", endpoint)
    records: list[dict[str, Any]] = []
    try:
        _wait_shared(cluster)
        devices = [frames_of(_signal(i), FS, stream=bed, chunk=125, boot="b1") for i, bed in enumerate(BEDS)]
        interleaved = [d[i] for i in range(max(map(len, devices))) for d in devices if i < len(d)]
        cut = round(31 * FS / 125) * len(BEDS)  # 31 s: 11 s into the pause, the asystole alarm is open
        _push(endpoint, interleaved[:cut])

        def onsets() -> set[str]:
            asyncio.run(_alarms(cluster.urls, "bridge", records))
            return {r["stream"] for r in records if r["kind"] == "asystole" and r["state"] == "onset"}

        wait_for(lambda: onsets() == set(BEDS), 60, "an asystole alarm on every bed")
        victim = asyncio.run(_leaders(cluster.urls))[ALARMS_STREAM]
        assert victim is not None  # it leads the frames and both buckets too: one kill, four elections
        assert set(asyncio.run(_leaders(cluster.urls, lead=victim)).values()) == {victim}
        cluster.kill(victim)
        killed_at = time.monotonic()
        survivors = [n.url for n in cluster.nodes if n.running]
        _push(endpoint, interleaved[cut:])  # devices go on sending while the cluster elects

        def elected() -> bool:
            try:
                now = asyncio.run(_leaders(survivors))
            except (nats.errors.Error, TimeoutError):
                return False
            return all(leader not in (None, victim) for leader in now.values())

        wait_for(elected, 30, "a new leader of the alarm and frame streams")
        expected = {e for d in devices for e in _reference(d)}

        def ended() -> bool:  # every transition of the embedded monitor has been read (later ones may still come)
            asyncio.run(_alarms(survivors, "bridge", records))
            return expected <= _clinical(records)

        wait_for(ended, 60, "every alarm transition of the embedded monitor after the leader died")
        resumed_s = time.monotonic() - killed_at
        leases = asyncio.run(read_leases(survivors, PARTITIONS))
        assert all(lease.get("owner") in ("A", "B") and lease.get("live") for lease in leases), leases
        assert all(proc.poll() is None for proc in procs.values())  # no role died with the server
        cluster.restart(victim)  # back on its store: it rejoins as a follower and catches up
        wait_for(lambda: asyncio.run(_caught_up(survivors, victim)), 30, f"{victim} a current replica again")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(20)
    transitions = Counter((r["alarm_id"], r["state"], r["sample"]) for r in records if r["state"] != "update")
    assert max(transitions.values()) == 1, [t for t, n in transitions.items() if n > 1]  # none published twice
    assert _clinical(records) == expected  # the embedded monitor's episodes, none lost or extra
    assert any(e[1] == "asystole" and e[3] == "end" for e in expected)  # ended after the kill
    assert resumed_s < 60


class _FlakyStream:
    """A JetStream whose publishes fail ``failures`` times (a leader being elected), then store."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.stored: dict[str, dict[str, Any]] = {}  # message id -> record (the duplicate window)

    async def publish(self, subject: str, payload: bytes, **kw: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise nats.js.errors.NoStreamResponseError
        msg_id = kw["headers"]["Nats-Msg-Id"]
        duplicate = msg_id in self.stored
        self.stored.setdefault(msg_id, json.loads(payload))
        return type("Ack", (), {"duplicate": duplicate})()


class _Bucket:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    async def put(self, key: str, value: bytes) -> None:
        self.keys[key] = value

    async def delete(self, key: str) -> None:
        self.keys.pop(key, None)


def test_a_transition_whose_publish_failed_is_published_on_the_retry_once() -> None:
    js, kv = _FlakyStream(failures=1), _Bucket()
    publisher = AlarmPublisher(cast(Any, js), cast(Any, kv), 0, "A")
    publisher.live = True
    onset = AlarmEvent("bed-1", "asystole", "onset", 1000, 2000, 250.0, "Asystole")
    end = AlarmEvent("bed-1", "asystole", "end", 1000, 3000, 250.0, "Asystole", end_reason="beats")
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        asyncio.run(publisher.publish([onset]))
    asyncio.run(publisher.publish([onset]))  # the partition runner offers it again
    assert [r["state"] for r in js.stored.values()] == ["onset"] and list(kv.keys) == ["p0.bed-1.asystole"]
    js.failures = 1
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        asyncio.run(publisher.publish([end]))
    asyncio.run(publisher.publish([end]))
    assert [r["state"] for r in js.stored.values()] == ["onset", "end"] and not kv.keys


def test_an_orphan_end_retried_after_a_failure_is_the_same_message() -> None:
    js, kv = _FlakyStream(failures=1), _Bucket()
    publisher = AlarmPublisher(cast(Any, js), cast(Any, kv), 0, "A")
    publisher.live = True
    record = alarm_record(AlarmEvent("bed-1", "asystole", "onset", 1000, 2000, 250.0, "Asystole"))
    kv.keys["p0.bed-1.asystole"] = json.dumps(record).encode()

    async def adopt() -> None:
        async def keys(*_: Any) -> list[str]:
            return list(kv.keys)

        async def get(key: str) -> Any:
            return type("Entry", (), {"value": kv.keys[key]})

        kv.get = get  # type: ignore[attr-defined]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("monitor.cluster._alarms.bucket_keys", keys)
            assert await publisher.adopt(lambda stream, kind: None) == 1  # not active after the rebuild

    asyncio.run(adopt())
    samples = iter([5000, 5250])  # the stream goes on between the two tries
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        asyncio.run(publisher.end_orphans(lambda stream: next(samples)))
    assert asyncio.run(publisher.end_orphans(lambda stream: next(samples))) == 1
    ends = [r for r in js.stored.values() if r["state"] == "end"]
    assert len(ends) == 1 and ends[0]["sample"] == 5000 and ends[0]["end_reason"] == REPLACED_REASON
    assert not kv.keys
