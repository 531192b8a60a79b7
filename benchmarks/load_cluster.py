"""``load.py --cluster N``: the same device load through cluster mode (NATS JetStream, one gateway, N workers).

A local NATS (``--nats-nodes`` 3: ``LocalCluster`` on loopback, R3; 1: one server, R1), one gateway and N
analysis workers, each its own process as deployed (``python -m monitor.cluster --role gateway|worker``,
workers with the shipped classifier, ``OMP_NUM_THREADS=1``). The workers run with ``ECG_MONITOR_STATS_S=1``
(the opt-in measurement of ``monitor.cluster``: every second each worker publishes its frames, samples
analysed and every labelled beat's ready sample, wall time and ready -> label latency on ``ecg.stats.worker``).
The devices are load.py's (``--publish``), pushing to the gateway. For each stream count:

* lost: frames sent minus frames stored in ``ECG_FRAMES`` (the gateway's intake) and minus frames the workers
  analysed (their ``frames``), after ``--drain`` seconds; the gateway's ``failed`` count from its last log line;
* lag: (frames sent - frames analysed) / (N x 10 frames/s), at each stats message in the measured window;
* latency ``p99_ms``: ready -> label on the worker (the embedded monitor's ``latency_ms``, same rule), and
  ``e2e_p99_ms``: from the moment the device was due to send the frame that made the beat ready (its
  ``ready_sample``) to its label (device pacing, ZeroMQ, gateway, JetStream, worker fetch, analysis);
* CPU (% of one core) and RSS of every process: NATS server(s), gateway, each worker, devices, this collector.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from load import CHUNK, busy_seconds, cpu_seconds, free_port, loadavg, percentiles, rss_mb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.cluster import FRAMES_STREAM, LocalCluster, read_leases  # noqa: E402

STATS_SUBJECT = "ecg.stats.worker"
PERIOD = 0.1


class StatsReader:
    """Collects the workers' stats messages (a thread with its own event loop)."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        self._ready.wait(30)

    async def _main(self) -> None:
        import nats

        nc = await nats.connect(self.servers)

        async def on_msg(msg: Any) -> None:
            self.messages.append(json.loads(msg.data))

        await nc.subscribe(STATS_SUBJECT, cb=on_msg)
        self._ready.set()
        while not self._stop.is_set():
            await asyncio.sleep(0.1)
        await nc.close()

    def analysed(self) -> int:
        """Frames analysed: the latest count of each worker, summed."""
        last: dict[str, int] = {}
        for m in list(self.messages):
            last[m["worker"]] = int(m["frames"])
        return sum(last.values())

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


async def _stored(servers: list[str]) -> int:
    import nats

    nc = await nats.connect(servers)
    try:
        return int((await nc.jetstream(timeout=10.0).stream_info(FRAMES_STREAM)).state.messages)
    finally:
        await nc.close()


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_shared(servers: list[str], partitions: int, workers: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            owners = [le.get("owner") for le in asyncio.run(read_leases(servers, partitions))]
        except Exception:  # the bucket is not there yet
            owners = []
        if len(owners) == partitions and all(owners) and len(set(owners)) == workers:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{workers} workers did not share the {partitions} partitions within {timeout} s")


def _gateway_counts(log: Path) -> dict[str, int]:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "gateway: received" in ln]
    if not lines:
        return {}
    return {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", lines[-1].split("gateway: ", 1)[1])}


def measure_cluster(
    n: int, workers: int, nodes: int, warmup: float, seconds: float, drain: float, data: Path, partitions: int
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp), size=nodes) as cluster:
        folder = Path(tmp)
        common = ["-m", "monitor.cluster", "--cluster", cluster.url, "--partitions", str(partitions)]
        common += ["--replicas", "1" if nodes == 1 else "3"]
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(workers):
            name = f"w{i + 1}"
            args = [*common, "--role", "worker", "--model", "default", "--name", name]
            procs[name] = _spawn(args, folder / f"{name}.log", {**env, "ECG_MONITOR_STATS_S": "1"})
        ingest = f"tcp://127.0.0.1:{free_port()}"
        procs["gateway"] = _spawn([*common, "--role", "gateway", "--ingest", ingest], folder / "gateway.log", env)
        stats = publisher = None
        try:
            _wait_shared(cluster.urls, partitions, workers)
            stats = StatsReader(cluster.urls)
            pub = [str(Path(__file__).with_name("load.py")), "--publish", str(n), "--endpoint", ingest]
            pub += ["--seconds", str(warmup + seconds + 1.0), "--data", str(data)]
            publisher = subprocess.Popen([sys.executable, *pub], stdout=subprocess.PIPE, text=True)
            progress: list[dict[str, Any]] = []
            reader = threading.Thread(
                target=lambda: progress.extend(json.loads(line) for line in publisher.stdout or ()), daemon=True
            )
            reader.start()
            pids = {"nats-" + nd.name: nd.process.pid for nd in cluster.nodes if nd.process is not None}
            pids |= {k: p.pid for k, p in procs.items()} | {"devices": publisher.pid}

            def snap() -> dict[str, Any]:
                cpu = {k: cpu_seconds(pid) for k, pid in pids.items()}
                return {"wall": time.time(), "cpu": cpu, "self": time.process_time(), "busy": busy_seconds()}

            time.sleep(warmup)
            a = snap()
            time.sleep(seconds)
            b = snap()
            rss = {k: round(rss_mb(pid), 1) for k, pid in pids.items()}
            if publisher.wait(timeout=600) != 0 or not progress:
                raise RuntimeError(f"the device simulator failed (exit {publisher.returncode}); see its stderr")
            reader.join(timeout=5)
            sent = int(progress[-1]["frames"])
            deadline = time.monotonic() + drain
            while time.monotonic() < deadline and stats.analysed() < sent:
                time.sleep(0.5)
            time.sleep(1.5)  # one more stats message
            stored = asyncio.run(_stored(cluster.urls))
            analysed = stats.analysed()
        finally:
            if stats is not None:
                stats.close()
            if publisher is not None and publisher.poll() is None:
                publisher.kill()
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        gateway = _gateway_counts(folder / "gateway.log")
    return _row(n, workers, nodes, progress, stats.messages, a, b, rss, sent, stored, analysed, gateway)


def _row(
    n: int,
    workers: int,
    nodes: int,
    progress: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    a: dict[str, Any],
    b: dict[str, Any],
    rss: dict[str, float],
    sent: int,
    stored: int,
    analysed: int,
    gateway: dict[str, int],
) -> dict[str, Any]:
    span = b["wall"] - a["wall"]
    t0 = next(p["t0_wall"] for p in progress if "t0_wall" in p)
    pts = [(p["wall"], p["frames"]) for p in progress]
    local: list[float] = []
    e2e: list[float] = []
    lags: list[float] = []
    last: dict[str, int] = {}
    for m in messages:
        last[m["worker"]] = int(m["frames"])
        if not a["wall"] <= m["wall"] <= b["wall"]:
            continue
        sent_then = float(np.interp(m["wall"], [p[0] for p in pts], [p[1] for p in pts]))
        lags.append((sent_then - sum(last.values())) / (n / PERIOD))
        for stream, ready, wall, ms in m["beats"]:
            local.append(ms)
            if ready:
                i = int(stream.rsplit("-", 1)[1])
                due = t0 + ((ready - 1) // CHUNK + 1) * PERIOD + PERIOD * i / n
                e2e.append(1000.0 * (wall - due))
    cpu = {k: round(100 * (b["cpu"][k] - a["cpu"][k]) / span, 1) for k in a["cpu"]}
    cpu["collector"] = round(100 * (b["self"] - a["self"]) / span, 1)
    e2e_pct = percentiles(e2e)
    row: dict[str, Any] = {
        "streams": n,
        "workers": workers,
        "nats_nodes": nodes,
        "samples_sent": sent * CHUNK,
        "samples_stored": stored * CHUNK,
        "samples_analysed": analysed * CHUNK,
        "samples_lost": max(0, sent - min(stored, analysed)) * CHUNK,
        "gateway": gateway,
        "lag_s_max": round(max(lags), 3) if lags else None,
        "beats_measured": len(local),
        "beats_dropped": sum(int(m.get("beats_dropped", 0)) for m in messages),
        **percentiles(local),
        **{f"e2e_{k}": v for k, v in e2e_pct.items()},
        "cpu_pct": cpu,
        "cpu_pct_total": round(sum(cpu.values()), 1),
        "rss_mb": rss,
        "device_late_ms_p99": progress[-1].get("late_ms_p99"),
        "measured_s": round(span, 1),
        "loadavg_1min_end": loadavg(),
        "other_cpu_pct": round(100 * (b["busy"] - a["busy"]) / span - sum(cpu.values()), 1),
    }
    p99 = row["p99_ms"]
    row["held"] = bool(
        row["samples_lost"] == 0
        and gateway.get("failed", 0) == 0
        and row["lag_s_max"] is not None
        and row["lag_s_max"] < 1.0
        and p99 is not None
        and p99 <= 100.0
    )
    e2e_p99 = row["e2e_p99_ms"]
    row["held_e2e"] = bool(row["held"] and e2e_p99 is not None and e2e_p99 <= 100.0)
    return row


def plot_cluster(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["streams"] for r in rows]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, style in (("p50_ms", "o-"), ("p99_ms", "^-"), ("e2e_p50_ms", "o--"), ("e2e_p99_ms", "^--")):
        ax.plot(ns, [r[key] if r[key] is not None else np.nan for r in rows], style, label=key[:-3])
    ax.axhline(100, color="grey", ls=":", lw=1)
    ax.set_xlabel("concurrent real-time streams (360 Hz, 100 ms frames)")
    ax.set_ylabel("ms (ready -> label; e2e: device due -> label)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    for r in rows:
        if not r["held"]:
            ax.annotate("not held", (r["streams"], r["p99_ms"] or 100), fontsize=8, color="red")
    names = sorted({k for r in rows for k in r["cpu_pct"]})
    bottom = np.zeros(len(rows))
    for name in names:
        vals = np.array([r["cpu_pct"].get(name, 0.0) for r in rows])
        ax2.bar([str(x) for x in ns], vals, bottom=bottom, label=name)
        bottom += vals
    ax2.set_ylabel("CPU (% of one core), per process")
    ax2.set_xlabel("streams")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_cluster(args: Any, machine: str) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for n in args.streams:
        row = measure_cluster(
            n, args.cluster, args.nats_nodes, args.warmup, args.seconds, args.drain, args.data, args.partitions
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    held = [r["streams"] for r in rows if r["held"]]
    meta = {
        "machine": machine,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d"),
        "command": ("python benchmarks/load.py " + " ".join(sys.argv[1:])).strip(),
        "setup": f"{args.nats_nodes} NATS node(s) on loopback (R{1 if args.nats_nodes == 1 else 3}, "
        f"sync_interval always), 1 gateway, {args.cluster} worker(s) (--model default, OMP_NUM_THREADS=1), "
        f"{args.partitions} partitions; devices: one process for all N streams",
        "latency": "p*_ms: ready -> label on the worker; e2e_p*_ms: device due to send the frame that made the beat "
        "ready -> label (one machine, one clock)",
        "held_rule": "no sample lost (stored and analysed), gateway failed 0, lag < 1 s, p99 ready -> label <= 100 ms",
        "warmup_s": args.warmup,
        "measured_s": args.seconds,
        "largest_n_held": max(held) if held else None,
    }
    (args.out / "load_cluster.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    plot_cluster(rows, args.out / "load_cluster.png")
    for r in rows:
        print(
            f"N={r['streams']} lost={r['samples_lost']} p99={r['p99_ms']} e2e_p99={r['e2e_p99_ms']} "
            f"lag={r['lag_s_max']} cpu={r['cpu_pct']} held={r['held']}"
        )
