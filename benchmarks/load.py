"""Concurrent real-time streams through the whole monitor, over TCP loopback.

N simulated bedside devices send 360 Hz ECG (mitdb records, first lead, looped,
each device starting at its own place in its record and its own moment within
the 100 ms frame period) to one ``ecg-monitor`` process, as real devices do:
wire format v1 over a ZeroMQ PUSH socket, frames paced against absolute target
times. The devices run in a separate process (one process for all N, so they
do not share the monitor's interpreter lock); the monitor runs as a
subprocess with its default CPU classifier and one PyTorch thread:

    OMP_NUM_THREADS=1 ecg-monitor --source tcp://127.0.0.1:PORT --alerts tcp://127.0.0.1:PORT2 \
        --view off --alarm-log off

For each N, after ``--warmup`` seconds, ``--seconds`` of measurement:

* samples sent by the devices and samples received by the monitor (its status
  topic's ``messages`` minus ``rejected``, 36 samples a frame); after the
  devices stop, the monitor gets ``--drain`` seconds to take what is queued;
  anything it has not received by then is lost;
* lag: how far the monitor's intake trails the devices (seconds of signal),
  from each status message (every 5 s);
* latency: ``latency_ms`` of every beat message (``beat/`` topic, all
  streams): wall time from the beat being ready to its label being published;
* CPU of the monitor, the devices and this collector (/proc/PID/stat), and the
  monitor's resident memory.

N is held when no sample is lost, the lag stays under 1 s and the p99 latency
is at most 100 ms. Run: ``python benchmarks/load.py`` (``--streams 250 500
...``); writes ``benchmarks/results/load.{json,png}``. ``--frame-cost`` instead
measures the ingest path alone (no ZeroMQ, no classifier): CPU microseconds per
frame of ``Ingest.on_message`` and ``Ingest.step``, 1,000 streams.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ECG_MONITOR_SHARED_DATA") or ROOT.parent / "shared" / "data") / "mitdb"
RESULTS = ROOT / "benchmarks" / "results"
CHUNK = 36  # samples per frame: 100 ms at 360 Hz
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- devices
def _records(data: Path) -> list[tuple[str, np.ndarray, dict[str, Any], float]]:
    from replay import database_records, load_record

    out = []
    for ref in database_records(data, offline=True):
        rec = load_record(ref)
        desc = rec.signal_description()
        first = {k: (v[:1] if isinstance(v, tuple) else v) for k, v in desc.items()}
        out.append((ref.name, np.ascontiguousarray(rec.samples[:, 0]), first, rec.fs))
    return out


class _Device:
    """One stream: a record looped from its own starting point; headers built from a template."""

    def __init__(self, sid: str, x: np.ndarray, desc: dict[str, Any], fs: float, pos: int, offset: float) -> None:
        from monitor.protocol import encode_data

        self.raw = x.astype("<i2").tobytes()
        self.n = x.size
        self.pos = pos
        self.seq = 0
        self.start = 0
        self.offset = offset
        self.item = 2
        # encode_data's header, split around its per-frame fields (seq, start, sent)
        probe = encode_data(sid, 111, 222, fs, x[:CHUNK], sent=333.5, **desc)
        text = probe[0].decode()
        a, rest = text.split('"seq":111,"start":222', 1)
        b, c = rest.split('"sent":333.5', 1)
        self._pre, self._mid, self._post = a + '"seq":', b + '"sent":', c

    def header(self, sent: float) -> bytes:
        return f'{self._pre}{self.seq},"start":{self.start}{self._mid}{sent!r}{self._post}'.encode()

    def frame(self, sent: float) -> list[bytes]:
        end = self.pos + CHUNK
        if end <= self.n:
            payload = self.raw[self.pos * 2 : end * 2]
            self.pos = end % self.n
        else:  # wrap around the end of the record
            k = self.n - self.pos
            payload = self.raw[self.pos * 2 :] + self.raw[: (CHUNK - k) * 2]
            self.pos = CHUNK - k
        parts = [self.header(sent), payload]
        self.seq += 1
        self.start += CHUNK
        return parts


def publish(n: int, endpoint: str, seconds: float, data: Path, period: float) -> None:
    """The device simulator process: N streams until ``seconds`` have passed; progress as JSON lines."""
    import zmq

    from monitor.protocol import encode_data

    recs = _records(data)
    devices = []
    for i in range(n):
        _name, x, desc, fs = recs[i % len(recs)]
        pos = (i * 7919 * CHUNK + i // len(recs) * 104729) % x.size
        devices.append(_Device(f"bed-{i:04d}", x, desc, fs, pos, offset=period * i / n))
    d0 = devices[0]  # the template gives encode_data's bytes exactly
    probe = encode_data("bed-0000", 111, 222, recs[0][3], recs[0][1][:CHUNK], sent=333.5, **recs[0][2])
    d0.seq, d0.start = 111, 222
    assert d0.header(333.5) == probe[0], (d0.header(333.5), probe[0])
    d0.seq = d0.start = 0
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 1_000_000)
    sock.setsockopt(zmq.LINGER, 5000)
    sock.connect(endpoint)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    frames = 0
    late: list[float] = []
    t0 = time.monotonic() + 0.5
    t_end = t0 + seconds
    next_report = t0
    out = sys.stdout
    out.write(json.dumps({"wall": time.time(), "frames": 0, "t0_wall": time.time() + t0 - time.monotonic()}) + "\n")
    k = 0
    while not stop.is_set():
        base = t0 + (k + 1) * period
        if base - period >= t_end:
            break
        for dev in devices:
            target = base + dev.offset
            now = time.monotonic()
            if target - now > 0.002:
                time.sleep(target - now)
                now = time.monotonic()
            sock.send_multipart(dev.frame(time.time()))
            frames += 1
            if k % 10 == 0:  # lateness sampled on every 10th tick
                late.append(max(0.0, now - target))
        k += 1
        now = time.monotonic()
        if now >= next_report:
            next_report = now + 0.5
            out.write(json.dumps({"wall": time.time(), "frames": frames}) + "\n")
            out.flush()
    lat = np.asarray(late) * 1000 if late else np.zeros(1)
    out.write(
        json.dumps(
            {
                "wall": time.time(),
                "frames": frames,
                "done": True,
                "late_ms_p50": round(float(np.percentile(lat, 50)), 2),
                "late_ms_p99": round(float(np.percentile(lat, 99)), 2),
                "late_ms_max": round(float(lat.max()), 2),
            }
        )
        + "\n"
    )
    out.flush()
    sock.close()
    ctx.term()


# ---------------------------------------------------------------- measuring
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def loadavg() -> float:
    """The machine's 1-minute load average (other work on the 2 cores shows here)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    return (sum(values) - values[3] - values[4]) / TICK  # all but idle and iowait


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def monitor_command(port: int, alerts: int) -> list[str]:
    exe = Path(sys.executable).parent / "ecg-monitor"
    return [
        str(exe),
        "--source",
        f"tcp://127.0.0.1:{port}",
        "--alerts",
        f"tcp://127.0.0.1:{alerts}",
        "--view",
        "off",
        "--alarm-log",
        "off",
    ]


class Collector:
    """Subscribes to the monitor's beat and status topics in a thread."""

    def __init__(self, endpoint: str, beats: bool = True) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"status/")
        if beats:
            self.sock.setsockopt(zmq.SUBSCRIBE, b"beat/")
        self.times = array("d")  # publication time of each beat message
        self.latency = array("d")  # its latency_ms
        self.status: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import zmq

        loads = json.loads
        while not self.stop.is_set():
            if not self.sock.poll(100):
                continue
            while True:
                try:
                    topic, body = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = loads(body)
                if topic.startswith(b"beat/"):
                    lat = msg.get("latency_ms")
                    if lat is not None:
                        self.times.append(msg["time"])
                        self.latency.append(lat)
                else:
                    self.status.append(msg)

    def window(self, since: float, until: float) -> list[float]:
        """Latencies (ms) of the beats published between two wall times."""
        lat = np.array(self.latency, dtype=np.float64)  # copies: the arrays keep growing in the thread
        t = np.array(self.times, dtype=np.float64)[: lat.size]
        lat = lat[: t.size]
        return lat[(t >= since) & (t <= until)].tolist()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()
        self.ctx.term()


def received(status: dict[str, Any]) -> int:
    """Frames the monitor took (messages not rejected)."""
    return int(status["messages"]) - sum(int(v) for v in status.get("rejected", {}).values())


class Run:
    """A monitor subprocess, a device simulator subprocess and a collector, for one N."""

    def __init__(self, n: int, seconds: float, data: Path, log: Path) -> None:
        self.n = n
        port, alerts = free_port(), free_port()
        self.cmd = monitor_command(port, alerts)
        self.log = log.open("w")
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        self.monitor = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.collector = Collector(f"tcp://127.0.0.1:{alerts}")
        deadline = time.monotonic() + 120
        while not self.collector.status:
            if self.monitor.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the monitor did not start; see {log}")
            time.sleep(0.2)
        pub = [sys.executable, str(Path(__file__).resolve()), "--publish", str(n), "--endpoint"]
        pub += [f"tcp://127.0.0.1:{port}", "--seconds", str(seconds), "--data", str(data)]
        self.publisher = subprocess.Popen(pub, stdout=subprocess.PIPE, text=True)
        self.progress: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.started = time.time()

    def _read(self) -> None:
        assert self.publisher.stdout is not None
        for line in self.publisher.stdout:
            self.progress.append(json.loads(line))

    def sent_at(self, wall: float) -> float:
        """Frames the devices had sent by a wall time (interpolated between progress reports)."""
        pts = [(p["wall"], p["frames"]) for p in self.progress]
        if not pts or wall <= pts[0][0]:
            return 0.0
        return float(np.interp(wall, [p[0] for p in pts], [p[1] for p in pts]))

    def snapshot(self) -> dict[str, float]:
        return {
            "wall": time.time(),
            "monitor_cpu": cpu_seconds(self.monitor.pid),
            "publisher_cpu": cpu_seconds(self.publisher.pid),
            "self_cpu": time.process_time(),
            "busy": busy_seconds(),
        }

    def finish(self, drain: float) -> dict[str, Any]:
        """Wait for the devices to end and the monitor to take what is queued; stop everything."""
        self.publisher.wait(timeout=600)
        self._reader.join(timeout=5)
        final = self.progress[-1]
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            if self.collector.status and received(self.collector.status[-1]) >= final["frames"]:
                break
            time.sleep(0.5)
        time.sleep(0.5)
        rss = rss_mb(self.monitor.pid)
        self.monitor.send_signal(signal.SIGINT)
        try:
            self.monitor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.monitor.kill()
            self.monitor.wait()
        time.sleep(0.3)
        self.collector.close()
        self.log.close()
        return {"final": final, "rss_mb": rss}


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def lag_series(run: Run, since: float, until: float) -> list[float]:
    """Seconds of signal the monitor's intake trailed the devices, at each status message in a window."""
    out = []
    for st in run.collector.status:
        if since <= st["time"] <= until:
            out.append((run.sent_at(st["time"]) - received(st)) / (run.n / 0.1))
    return out


def measure(n: int, warmup: float, seconds: float, drain: float, data: Path, logdir: Path) -> dict[str, Any]:
    run = Run(n, warmup + seconds + 1.0, data, logdir / f"load-monitor-{n}.log")
    try:
        time.sleep(warmup)
        a = run.snapshot()
        time.sleep(seconds)
        b = run.snapshot()
    finally:
        end = run.finish(drain)
    span = b["wall"] - a["wall"]
    sent = int(end["final"]["frames"])
    last = run.collector.status[-1]
    got = received(last)
    lat = run.collector.window(a["wall"], b["wall"])
    lags = lag_series(run, a["wall"], b["wall"])
    rejected = sum(int(v) for v in last.get("rejected", {}).values())
    row = {
        "streams": n,
        "samples_sent": sent * CHUNK,
        "samples_received": got * CHUNK,
        "samples_lost": max(0, sent - got) * CHUNK,
        "rejected_frames": rejected,
        "lag_s_max": round(max(lags), 3) if lags else None,
        "beats_measured": len(lat),
        **percentiles(lat),
        "monitor_cpu_pct": round(100 * (b["monitor_cpu"] - a["monitor_cpu"]) / span, 1),
        "devices_cpu_pct": round(100 * (b["publisher_cpu"] - a["publisher_cpu"]) / span, 1),
        "collector_cpu_pct": round(100 * (b["self_cpu"] - a["self_cpu"]) / span, 1),
        "monitor_rss_mb": round(end["rss_mb"], 1),
        "device_late_ms_p99": end["final"].get("late_ms_p99"),
        "device_late_ms_max": end["final"].get("late_ms_max"),
        "shed": last.get("shed"),
        "late_beats": last.get("late"),
        "health": last.get("health"),
        "measured_s": round(span, 1),
        "loadavg_1min_end": loadavg(),
        # CPU the rest of the machine used meanwhile (other users of the 2 cores), % of one core
        "other_cpu_pct": round(
            100
            * ((b["busy"] - a["busy"]) - sum(b[k] - a[k] for k in ("monitor_cpu", "publisher_cpu", "self_cpu")))
            / span,
            1,
        ),
    }
    p99 = row["p99_ms"]
    row["held"] = bool(
        row["samples_lost"] == 0
        and rejected == 0
        and (row["lag_s_max"] is not None and row["lag_s_max"] < 1.0)
        and p99 is not None
        and p99 <= 100.0
    )
    return row


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model or platform.machine()}, {os.cpu_count()} cores, {platform.system()}, no GPU used"


# ---------------------------------------------------------------- ingest cost alone
def frame_cost(n: int, seconds: float, data: Path) -> dict[str, Any]:
    """CPU microseconds per frame of the ingest path (decode, checks, ring, quality, detection, beats)."""
    import monitor
    from monitor import Ingest

    recs = _records(data)
    devices = []
    for i in range(n):
        _name, x, desc, fs = recs[i % len(recs)]
        pos = (i * 7919 * CHUNK + i // len(recs) * 104729) % x.size
        devices.append(_Device(f"bed-{i:04d}", x, desc, fs, pos, 0.0))
    ticks = round(seconds / 0.1)
    frames = [[d.frame(1.0e9 + k * 0.1) for d in devices] for k in range(ticks)]
    ingest = Ingest()
    warm = min(50, ticks // 4)
    for tick in frames[:warm]:
        for parts in tick:
            ingest.on_message(parts)
        ingest.step()
    t_msg = t_step = 0.0
    beats = 0
    for tick in frames[warm:]:
        t0 = time.process_time()
        for parts in tick:
            ingest.on_message(parts)
        t1 = time.process_time()
        beats += len(ingest.step())
        t_step += time.process_time() - t1
        t_msg += t1 - t0
    count = n * (ticks - warm)
    return {
        "streams": n,
        "code": str(Path(monitor.__file__).parent),
        "frames": count,
        "beats": beats,
        "on_message_us_per_frame": round(1e6 * t_msg / count, 1),
        "step_us_per_frame": round(1e6 * t_step / count, 1),
        "total_us_per_frame": round(1e6 * (t_msg + t_step) / count, 1),
        "core_share_at_10_frames_per_s": round((t_msg + t_step) / ((ticks - warm) * 0.1), 3),
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["streams"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        ax.plot(ns, [r[key] if r[key] is not None else np.nan for r in rows], style, label=f"latency {key[:3]}")
    ax.axhline(100, color="grey", ls=":", lw=1)
    ax.set_xlabel("concurrent real-time streams (360 Hz, 100 ms frames)")
    ax.set_ylabel("beat ready → label published (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax2 = ax.twinx()
    ax2.plot(ns, [r["monitor_cpu_pct"] for r in rows], "k--", marker="x", label="monitor CPU %")
    ax2.set_ylabel("monitor CPU (% of one core)")
    for r in rows:
        if not r["held"]:
            ax.annotate("not held", (r["streams"], r["p99_ms"] or 100), fontsize=8, color="red")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, nargs="*", default=[250, 500, 750, 1000, 1250, 1500])
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per N")
    p.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    p.add_argument("--drain", type=float, default=10.0, help="seconds the monitor gets to take queued frames")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--stop-after-fail", type=int, default=2, help="stop after this many N in a row not held")
    p.add_argument("--frame-cost", action="store_true", help="measure the ingest path alone instead")
    p.add_argument("--cluster", type=int, default=0, help="N > 0: cluster mode, a gateway and N workers (load_cluster)")
    p.add_argument("--nats-nodes", type=int, default=3, choices=(1, 3), help="--cluster: NATS servers (3: R3)")
    p.add_argument("--partitions", type=int, default=8, help="--cluster: partitions of the frame stream")
    p.add_argument("--publish", type=int, help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.publish:
        publish(args.publish, args.endpoint, args.seconds, args.data, 0.1)
        return
    if args.frame_cost:
        print(json.dumps(frame_cost(1000, 20.0, args.data)))
        return
    if args.cluster:
        from load_cluster import run_cluster

        run_cluster(args, machine())
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    fails = 0
    for n in args.streams:
        row = measure(n, args.warmup, args.seconds, args.drain, args.data, Path("/tmp"))
        rows.append(row)
        print(json.dumps(row), flush=True)
        fails = 0 if row["held"] else fails + 1
        if fails >= args.stop_after_fail:
            break
    held = [r["streams"] for r in rows if r["held"]]
    cmd = "python benchmarks/load.py " + " ".join(sys.argv[1:])
    meta = {
        "machine": machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": cmd.strip(),
        "monitor_command": "OMP_NUM_THREADS=1 "
        + " ".join(["ecg-monitor", *monitor_command(0, 0)[1:]]).replace(":0", ":PORT"),
        "torch_threads": "1 (OMP_NUM_THREADS=1): with 2 threads on 2 busy cores PyTorch's CPU kernels spin "
        "and a batch of 12 beats takes ~50-200 ms instead of ~2.5 ms",
        "fs": 360.0,
        "frame_samples": CHUNK,
        "warmup_s": args.warmup,
        "measured_s": args.seconds,
        "devices": "one separate process for all N streams; mitdb records (first lead), looped",
        "latency": "latency_ms of every beat message: beat ready -> label published (monitor clock)",
        "held_rule": "no sample lost, intake lag < 1 s, p99 latency <= 100 ms",
        "largest_n_held": max(held) if held else None,
    }
    (args.out / "load.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    plot(rows, args.out / "load.png")
    print("| N | samples lost | p50 ms | p95 ms | p99 ms | monitor CPU % | devices CPU % | lag s | held |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['streams']} | {r['samples_lost']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['monitor_cpu_pct']} | {r['devices_cpu_pct']} | {r['lag_s_max']} | {r['held']} |"
        )


if __name__ == "__main__":
    main()
