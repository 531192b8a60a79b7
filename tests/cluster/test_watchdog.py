"""'monitoring interrupted': beds that send while no worker analyses them raise it once, and end it once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

import zmq

from monitor.app import MonitorConfig
from monitor.cluster import (
    RESUMED_REASON,
    AlarmReader,
    ClusterLayout,
    Delivery,
    LocalCluster,
    Watchdog,
    WatchdogSettings,
    Worker,
    WorkerSettings,
    bus_body,
    encode_envelope,
    ensure_layout,
    read_leases,
)
from monitor.protocol import check_body
from monitor.testing import ecg, frames_of
from tests.cluster._nats import connected
from tests.cluster.conftest import ROOT, start_worker, wait_for

FS = 250.0
CHUNK = 125  # 0.5 s frames
PARTITIONS = 2
BUDGET_S = 3.0
KIND = "monitoring_interrupted"
GATEWAY = [sys.executable, "-m", "monitor.cluster", "--cluster"]
WATCH = ["--partitions", str(PARTITIONS), "--lease-s", "2", "--watchdog-s", str(BUDGET_S), "--recent-s", "2"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gateway(cluster: LocalCluster, name: str, port: int) -> subprocess.Popen[bytes]:
    log = open(cluster.folder / f"gateway-{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(
            [*GATEWAY, cluster.url, "--role", "gateway", "--ingest", f"tcp://127.0.0.1:{port}", *WATCH],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        log.close()


class _Devices(threading.Thread):
    """Beds pushing 0.5 s frames in real time to their gateway; ``quiet`` beds stop after two frames."""

    def __init__(self, beds: dict[str, int], quiet: set[str]) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.beds = beds
        self.quiet = quiet

    def run(self) -> None:
        socks = {}
        for port in set(self.beds.values()):
            socks[port] = self.ctx.socket(zmq.PUSH)
            socks[port].setsockopt(zmq.LINGER, 0)
            socks[port].connect(f"tcp://127.0.0.1:{port}")
        x, _ = ecg([0.8] * 150, FS, seed=3)
        frames = {bed: frames_of(x, FS, stream=bed, chunk=CHUNK, boot="b1", eos=False) for bed in self.beds}
        start = time.monotonic()
        i = 0
        while not self.stop.is_set() and i < len(frames[next(iter(frames))]):
            for bed, port in self.beds.items():
                if bed not in self.quiet or i < 2:
                    socks[port].send_multipart(frames[bed][i])
            i += 1
            self.stop.wait(max(0.0, start + i * CHUNK / FS - time.monotonic()))
        for sock in socks.values():
            sock.close()
        self.ctx.term()


class _Worker(threading.Thread):
    """A worker in this process (no start-up to wait for): :meth:`halt` stops it as SIGTERM would."""

    def __init__(self, servers: list[str], name: str) -> None:
        super().__init__(daemon=True)
        config = MonitorConfig(engine_thread=False, silence_s=120.0, stream_timeout_s=600.0)
        settings = WorkerSettings(lease_s=2.0, renew_s=0.5, window_s=20.0)
        layout = ClusterLayout(partitions=PARTITIONS)
        self.worker = Worker(servers, layout=layout, settings=settings, config=config, name=name)
        self.started_loop = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        self.started_loop.set()
        await self.worker.run(self.stop)

    def halt(self) -> None:
        if self.started_loop.wait(10) and self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.join(20)


async def _read(servers: list[str], durable: str, out: list[tuple[float, Delivery]]) -> None:
    async with connected(servers) as nc:
        reader = AlarmReader(nc.jetstream(timeout=10.0), durable)
        for d in await reader.fetch(timeout=0.3):
            out.append((time.time(), d))
            await d.ack()


def _ours(got: list[tuple[float, Delivery]]) -> list[tuple[float, dict[str, Any]]]:
    return [(t, d.record) for t, d in got if d.record is not None and d.record["kind"] == KIND]


async def _layout(servers: list[str], layout: ClusterLayout) -> None:
    async with connected(servers) as nc:
        await ensure_layout(nc.jetstream(timeout=10.0), layout)


def test_beds_without_a_live_worker_raise_monitoring_interrupted_once_with_two_watchdogs(
    cluster: LocalCluster,
) -> None:
    asyncio.run(_layout(cluster.urls, ClusterLayout(partitions=PARTITIONS)))
    ports = [_port(), _port()]
    gateways = [_gateway(cluster, name, port) for name, port in zip("AB", ports, strict=True)]
    args = ["--partitions", str(PARTITIONS), "--lease-s", "2", "--silence-s", "120", "--window-s", "20"]
    workers = {"W1": start_worker(cluster, "W1", *args)}
    devices = _Devices({"bed-a": ports[0], "bed-b": ports[0], "bed-c": ports[1], "bed-q": ports[1]}, {"bed-q"})
    got: list[tuple[float, Delivery]] = []
    standby: _Worker | None = None
    try:

        def owned_by(name: str) -> bool:
            leases = asyncio.run(read_leases(cluster.urls, PARTITIONS))
            return all(lease.get("owner") == name and lease.get("live") for lease in leases)

        wait_for(lambda: owned_by("W1"), 60, "the worker owning every partition")
        devices.start()
        time.sleep(1.0 + BUDGET_S)  # longer than the budget; the quiet bed stopped 1 s in
        asyncio.run(_read(cluster.urls, "watch", got))
        assert _ours(got) == []  # analysed: nothing interrupted
        killed_at = time.time()
        workers["W1"].send_signal(signal.SIGKILL)
        workers["W1"].wait(10)

        def states(state: str) -> set[str]:
            asyncio.run(_read(cluster.urls, "watch", got))
            return {r["stream"] for _, r in _ours(got) if r["state"] == state}

        wait_for(lambda: states("onset") == {"bed-a", "bed-b", "bed-c"}, 30, "an onset on every sending bed")
        onset_at = max(t for t, r in _ours(got) if r["state"] == "onset")
        standby = _Worker(cluster.urls, "W2")  # the analysis resumes
        standby.start()
        wait_for(lambda: states("end") == {"bed-a", "bed-b", "bed-c"}, 60, "the end on every bed")
        time.sleep(1.5)  # any late duplicate would have come
        asyncio.run(_read(cluster.urls, "watch", got))
    finally:
        devices.stop.set()
        if standby is not None:
            standby.halt()
        for proc in [*workers.values(), *gateways]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*workers.values(), *gateways]:
            proc.wait(20)
    assert onset_at - killed_at <= BUDGET_S + 4.0, onset_at - killed_at
    ours = [r for _, r in _ours(got)]
    assert Counter((r["stream"], r["state"]) for r in ours) == Counter(
        {(bed, state): 1 for bed in ("bed-a", "bed-b", "bed-c") for state in ("onset", "end")}
    )
    for bed in ("bed-a", "bed-b", "bed-c"):
        onset, end = [r for r in ours if r["stream"] == bed]
        assert (onset["state"], end["state"]) == ("onset", "end")
        assert onset["alarm_id"] == end["alarm_id"] == f"{bed}:{KIND}:{onset['onset_sample']}"
        assert end["end_reason"] == RESUMED_REASON and end["sample"] >= onset["sample"]
        assert (onset["category"], onset["priority"]) == ("technical", "high")
    for _, d in got:  # every transition on the stream is a valid alarm body for a bridge
        assert check_body(bus_body(d))["type"] == "alarm"


async def _race(cluster: LocalCluster) -> tuple[list[dict[str, Any]], int]:
    """Two watchdogs checking at the same moments: one onset, one end."""
    layout = ClusterLayout(partitions=1)
    async with connected(cluster.urls) as nc:
        js = nc.jetstream(timeout=10.0)
        owners, _ = await ensure_layout(js, layout)
        settings = WatchdogSettings(budget_s=0.5, lease_s=1.0, recent_s=30.0)
        dogs = [Watchdog(cluster.urls, layout=layout, settings=settings, name=n) for n in ("d1", "d2")]
        for dog in dogs:
            await dog.attach(js)
        x, _ = ecg([0.8] * 4, FS, seed=4)
        for m in frames_of(x, FS, stream="bed.9", chunk=CHUNK, boot="b1", eos=False):
            await js.publish("ecg.frames.bed=2E9", encode_envelope(m))
        await asyncio.sleep(0.6)  # no owner for longer than the budget
        for _ in range(3):
            await asyncio.gather(*(dog.check() for dog in dogs))
        value = b'{"owner": "w", "live": true, "seq": 1000}'
        for _ in range(2):  # an owner that renews: analysed again
            await owners.put("p0", value)
            await asyncio.gather(*(dog.check() for dog in dogs))
        records = await AlarmReader(js, "race").read(timeout=1.0)
        assert sum(d.raised for d in dogs) == sum(d.ended for d in dogs) == 1
        assert sum(d.published for d in dogs) == 2
    return records, len(x)


def test_two_watchdogs_checking_together_publish_one_onset_and_one_end(cluster: LocalCluster) -> None:
    records, sent = asyncio.run(_race(cluster))
    assert [(r["stream"], r["state"], r["kind"]) for r in records] == [
        ("bed.9", "onset", KIND),
        ("bed.9", "end", KIND),
    ]
    assert records[0]["onset_sample"] == records[0]["sample"] == sent  # the bed's last sample stored
    assert records[1]["end_reason"] == RESUMED_REASON
