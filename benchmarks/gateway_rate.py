"""How many device frames per second one cluster gateway stores in JetStream.

A NATS cluster on loopback (``--nodes`` 1 or 3, the wheel's nats-server, ``sync_interval: always``), one gateway
process (``python -m monitor.cluster --role gateway``), and this process pushing ``--frames`` pre-built frames
(``--beds`` streams, 36 samples of 360 Hz each, wire format v1, round robin over the beds) to the gateway's
ZeroMQ PULL socket as fast as ZeroMQ takes them. Measured: from the first frame pushed to the last one stored
in ``ECG_FRAMES`` (the stream's message count, polled), frames per second, and the gateway's CPU seconds.

Usage: ``python benchmarks/gateway_rate.py --nodes 1 --frames 20000`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.cluster import FRAMES_STREAM, LocalCluster  # noqa: E402
from monitor.protocol import encode_data  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def _stored(servers: list[str]) -> int:
    nc = await nats.connect(servers)
    try:
        try:
            info = await nc.jetstream(timeout=5.0).stream_info(FRAMES_STREAM)
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            return 0  # no layout yet, or the cluster still electing its leader
        return int(info.state.messages)
    finally:
        await nc.close()


def frames(beds: int, total: int) -> list[list[bytes]]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, (36, 1)).astype(np.int16)
    desc: dict[str, Any] = {"channels": ["MLII"], "units": ["mV"], "gain": [200.0], "baseline": [0.0]}
    out = []
    for k in range(total // beds + 1):
        for b in range(beds):
            out.append(encode_data(f"bed-{b:04d}", k, 36 * k, 360.0, x, sent=time.time(), **desc))
    return out[:total]


def measure(nodes: int, total: int, beds: int, replicas: int, extra: list[str]) -> dict[str, Any]:
    msgs = frames(beds, total)
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp), size=nodes) as cluster:
        ingest = f"tcp://127.0.0.1:{_free_port()}"
        cmd = [sys.executable, "-m", "monitor.cluster", "--cluster", cluster.url, "--role", "gateway"]
        cmd += ["--ingest", ingest, "--replicas", str(replicas), *extra]
        log = open(Path(tmp) / "gateway.log", "wb")  # noqa: SIM115
        gw = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            push = ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.SNDHWM, 0)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(ingest)
            deadline = time.monotonic() + 60
            while asyncio.run(_stored(cluster.urls)) == 0 and time.monotonic() < deadline:  # the layout made?
                push.send_multipart(msgs[0])  # a warm-up frame (stored once: the rest are duplicates)
                time.sleep(0.5)
            time.sleep(1.0)
            cpu0 = _cpu(gw.pid)
            t0 = time.monotonic()
            for m in msgs:
                push.send_multipart(m)
            pushed = time.monotonic() - t0
            stored = 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                stored = asyncio.run(_stored(cluster.urls))
                if stored >= total:
                    break
                time.sleep(0.1)
            span = time.monotonic() - t0
            cpu = _cpu(gw.pid) - cpu0
            push.close()
            ctx.term()
        finally:
            gw.terminate()
            gw.wait(30)
            log.close()
        tail = (Path(tmp) / "gateway.log").read_text().splitlines()[-3:]
    return {
        "nodes": nodes,
        "replicas": replicas,
        "beds": beds,
        "frames": total,
        "stored": stored,
        "push_s": round(pushed, 2),
        "span_s": round(span, 2),
        "frames_per_s": round(total / span),
        "gateway_cpu_s": round(cpu, 2),
        "gateway_cpu_us_per_frame": round(1e6 * cpu / total, 1),
        "gateway_log_tail": tail,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1, choices=(1, 3))
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--beds", type=int, default=1000)
    ap.add_argument("--gateway-args", default="", help="extra gateway arguments, space-separated")
    args = ap.parse_args()
    row = measure(args.nodes, args.frames, args.beds, 1 if args.nodes == 1 else 3, args.gateway_args.split())
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
