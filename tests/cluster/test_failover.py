"""A worker SIGKILLed with alarms open: the standby takes its partitions over, no alarm lost or raised twice."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

import nats
import numpy as np

from monitor.app import Monitor, MonitorConfig, Source
from monitor.cluster import (
    AlarmReader,
    ClusterLayout,
    FrameFilter,
    LocalCluster,
    encode_envelope,
    ensure_layout,
    read_leases,
)
from monitor.testing import ecg, frames_of
from tests.cluster.conftest import start_worker, wait_for

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
    nc = await nats.connect(servers)
    js = nc.jetstream(timeout=10.0)
    await ensure_layout(js, ClusterLayout(partitions=PARTITIONS))
    f = FrameFilter()
    for m in messages:
        f.on_message(m)
    for subject, msg_id, parts in f.take():
        await js.publish(subject, encode_envelope(parts), headers={"Nats-Msg-Id": msg_id})
    await nc.close()


async def _alarms(servers: list[str], durable: str, records: list[dict[str, Any]]) -> None:
    nc = await nats.connect(servers)
    reader = AlarmReader(nc.jetstream(timeout=10.0), durable)
    records += await reader.read(timeout=0.5)
    await nc.close()


def test_worker_sigkill_standby_takes_over_no_alarm_lost_or_duplicated(cluster: LocalCluster) -> None:
    args = ["--partitions", str(PARTITIONS), "--lease-s", "2", "--silence-s", "120", "--window-s", "120"]
    workers = {name: start_worker(cluster, name, *args) for name in ("A", "B")}
    try:
        asyncio.run(_publish(cluster.urls, []))  # the layout

        def shared() -> bool:
            owners = Counter(lease.get("owner") for lease in asyncio.run(read_leases(cluster.urls, PARTITIONS)))
            return owners == Counter({"A": 2, "B": 2})

        wait_for(shared, 60, "two workers sharing the partitions")
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

        def clinical() -> set[tuple[Any, ...]]:
            return {
                (r["stream"], r["kind"], r["onset_sample"], r["state"])
                for r in records
                if r["category"] == "clinical" and r["state"] != "update"
            }

        def ended() -> bool:  # every transition of the embedded monitor has been read (later ones may still come)
            asyncio.run(_alarms(cluster.urls, "test", records))
            return expected <= clinical()

        wait_for(ended, 60, "every alarm transition of the embedded monitor")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            proc.wait(20)
    transitions = Counter((r["alarm_id"], r["state"], r["sample"]) for r in records if r["state"] != "update")
    assert max(transitions.values()) == 1, [t for t, n in transitions.items() if n > 1]  # none published twice
    assert clinical() == expected  # the embedded monitor's episodes, none lost or extra
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
