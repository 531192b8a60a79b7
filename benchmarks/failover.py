"""Failover under load: SIGKILL one of two analysis workers while mitdb records stream through a gateway.

A 3-node NATS cluster on loopback (the wheel's nats-server, R3, ``sync_interval: always``), one gateway, two
workers (processes), ``ecg-replay`` pushing ``--records`` mitdb records at ``--speed`` times real time. After
``--kill-after-s`` one worker is SIGKILLed. Written to ``benchmarks/results/failover.json``:

- ``takeover_s``: from the SIGKILL to the last of the dead worker's partitions owned by the survivor and caught
  up with the live end of its frames (its beds analysed again);
- ``alarm_events_lost``: alarm onsets that never got an end, as read by a durable ALARMS consumer once every
  stream ended (each stream's end ends its alarms), plus ends without an onset;
- ``alarm_events_duplicated``: transitions read twice (same alarm id, state and sample) plus onsets of a
  (stream, kind) while one was open.

Usage: ``python benchmarks/failover.py --data-dir /work/shared/data/mitdb``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.cluster import AlarmReader, LocalCluster, read_leases  # noqa: E402

RECORDS = "100 101 103 105 106 108 109 111 112 113 114 115 116 117 118 119 121 122 123 124".split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env)


async def _read(servers: list[str], records: list[dict[str, Any]]) -> None:
    nc = await nats.connect(servers)
    records += await AlarmReader(nc.jetstream(timeout=10.0), "failover-bench").read(batch=1000, timeout=1.0)
    await nc.close()


def score(records: list[dict[str, Any]]) -> tuple[int, int]:
    seen = Counter((r["alarm_id"], r["state"], r["sample"]) for r in records if r["state"] != "update")
    duplicated = sum(n - 1 for n in seen.values())
    open_: dict[tuple[str, str], str] = {}
    lost = 0
    for r in records:
        pair = (r["stream"], r["kind"])
        if r["state"] == "onset":
            if pair in open_ and open_[pair] != r["alarm_id"]:  # raised again while open
                duplicated += 1
            open_[pair] = r["alarm_id"]
        elif r["state"] == "end":
            if open_.get(pair) == r["alarm_id"]:
                del open_[pair]
            elif seen[(r["alarm_id"], "end", r["sample"])] == 1:
                lost += 1  # an end whose onset was never read
    return lost + len(open_), duplicated


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/shared/data/mitdb")
    ap.add_argument("--records", type=int, default=20)
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--lease-s", type=float, default=3.0)
    ap.add_argument("--window-s", type=float, default=5.0)
    ap.add_argument("--kill-after-s", type=float, default=40.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "failover.json")
    args = ap.parse_args()
    records = RECORDS[: args.records]
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp), size=3) as cluster:
        folder = Path(tmp)
        common = ["-m", "monitor.cluster", "--cluster", cluster.url, "--partitions", str(args.partitions)]
        worker_args = ["--role", "worker", "--lease-s", str(args.lease_s), "--window-s", str(args.window_s)]
        ingest = f"tcp://127.0.0.1:{_free_port()}"
        procs = {name: _spawn([*common, *worker_args, "--name", name], folder / f"{name}.log") for name in ("A", "B")}
        procs["gateway"] = _spawn([*common, "--role", "gateway", "--ingest", ingest], folder / "gw.log")
        children = list(procs.values())
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # both workers share the partitions
                try:
                    owners = Counter(le.get("owner") for le in asyncio.run(read_leases(cluster.urls, args.partitions)))
                except Exception:  # the bucket is not there yet
                    owners = Counter()
                if owners.get("A") and owners.get("B") and sum(owners.values()) == args.partitions:
                    break
                time.sleep(0.5)
            replay = _spawn(
                ["-m", "replay._cli", "--connect", ingest, "--data-dir", args.data_dir, "--offline",
                 "--speed", str(args.speed), "--chunk-ms", "1000", *records],
                folder / "replay.log",
            )  # fmt: skip
            children.append(replay)
            started = time.monotonic()
            alarms: list[dict[str, Any]] = []
            while time.monotonic() - started < args.kill_after_s:
                asyncio.run(_read(cluster.urls, alarms))
            before = asyncio.run(read_leases(cluster.urls, args.partitions))
            victim_parts = [p for p, le in enumerate(before) if le.get("owner") == "A"]
            killed = time.time()
            procs["A"].send_signal(signal.SIGKILL)
            procs["A"].wait(10)
            takeover_s = None
            while time.time() - killed < 60:
                asyncio.run(_read(cluster.urls, alarms))
                now = asyncio.run(read_leases(cluster.urls, args.partitions))
                mine = [now[p] for p in victim_parts]
                if all(le.get("owner") == "B" and le.get("live") and le.get("live_at") for le in mine):
                    takeover_s = max(le["live_at"] for le in mine) - killed
                    break
            replay.wait()
            quiet = 0
            while quiet < 5:  # until the alarm stream stays quiet (every stream ended, every alarm ended)
                n = len(alarms)
                asyncio.run(_read(cluster.urls, alarms))
                quiet = quiet + 1 if len(alarms) == n else 0
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                proc.wait(30)
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait(10)
        lost, duplicated = score(alarms)
        result = {
            "command": "python benchmarks/failover.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()})",
            "records": records,
            "speed": args.speed,
            "partitions": args.partitions,
            "lease_s": args.lease_s,
            "window_s": args.window_s,
            "killed_worker_partitions": victim_parts,
            "takeover_s": None if takeover_s is None else round(takeover_s, 3),
            "alarm_events_read": len(alarms),
            "alarm_onsets": sum(r["state"] == "onset" for r in alarms),
            "alarm_events_lost": lost,
            "alarm_events_duplicated": duplicated,
            "ended_by_takeover": sum(r.get("end_reason") == "ended while its worker was replaced" for r in alarms),
            "not_measured": "NATS stream-leader SIGKILL (issue 15 asks for it too)",
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
