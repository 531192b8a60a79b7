"""Failover under load: SIGKILL one of two analysis workers, or the NATS server leading every stream, while mitdb
records stream through a gateway.

Each scenario runs on its own 3-node NATS cluster on loopback (the wheel's nats-server, R3, ``sync_interval:
always``) with one gateway, two workers (processes) and ``ecg-replay`` pushing ``--records`` mitdb records at
``--speed`` times real time; ``--kill-after-s`` into the replay the victim is SIGKILLed:

- ``worker``: worker A (the survivor B takes its partitions over);
- ``leader``: the server leading ``ECG_ALARMS``, made leader of ``ECG_FRAMES`` and both buckets' streams too
  before the replay (a stepdown naming it), so the one SIGKILL makes every stream elect a new leader, and the
  clients connected to it reconnect.

Measured, per scenario, into ``benchmarks/results/failover.json``:

- ``alarm_events_lost``: alarm onsets and ends of the embedded monitor on the same frames (the reference: one
  process, lockstep; clinical kinds and the technical ones decided on the samples: noisy signal, leads off)
  that a durable ALARMS reader (as a bedside bridge) never read;
  ``alarm_events_extra``: read ones the reference does not have; ``alarm_events_duplicated``: transitions read
  twice (same alarm id, state and sample) plus onsets of a (stream, kind) read while one was open;
- ``takeover_s``: worker: from the SIGKILL to the last of the dead worker's partitions owned by the survivor and
  caught up with the live end of its frames (its leases); leader: ``analysis_resumed_s``;
- ``analysis_resumed_s``: from the SIGKILL until every bed analysed past what was analysed before it, and
  ``longest_gap_s``: the longest time any bed's analysed samples did not grow (``baseline_gap_s``: the same
  before the kill): from the per-bed samples each worker reports on core NATS every 0.25 s
  (``ecg.progress.<worker>``), so the resolution is about 0.25 s;
- ``alarms_resumed_s``: from the SIGKILL to the first alarm transition stored after it (its stream timestamp);
- ``elected_s`` (leader): per stream, from the SIGKILL until its info names a new leader (polled every 0.1 s);
  ``observer_reconnected_s``: the benchmark's own client, connected to the killed server (with the roles'
  options: every server, ``max_reconnect_attempts=-1``, ``reconnect_time_wait=0.25``), until it reconnected;
- ``signal_lost_raised``: "signal lost" onsets (the wall-clock technical alarm: a bed whose frames stopped
  coming for 5 s, as while the frame stream has no leader), ``load_generator``: the replay's own CPU.

``benchmarks/results/failover.png``: one panel per scenario, per bed (y) a dot each time its analysis grew
(colour: the worker), alarm onsets (^) and ends (v) at their stream timestamps (red: clinical, purple:
technical), the kill at 0 s.

Usage: ``python benchmarks/failover.py --data-dir /work/shared/data/mitdb`` (both scenarios);
smoke run: ``--records 105 116 100 --speed 60 --kill-after-s 10 --out /tmp/failover.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import nats
import nats.errors

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app import Monitor, MonitorConfig, Source  # noqa: E402
from monitor.cluster import (  # noqa: E402
    ALARMS_STREAM,
    FRAMES_STREAM,
    OPEN_BUCKET,
    OWNERS_BUCKET,
    PROGRESS_SUBJECT,
    LocalCluster,
    lease_of,
    move_leaders,
    stream_leaders,
)
from monitor.vocabulary import CLINICAL_KINDS  # noqa: E402
from replay import ReplayConfig, Replayer, resolve_record  # noqa: E402

RECORDS = "100 101 103 105 106 108 109 111 112 113 114 115 116 117 118 119 121 122 123 124".split()
STREAMS = [ALARMS_STREAM, FRAMES_STREAM, f"KV_{OWNERS_BUCKET}", f"KV_{OPEN_BUCKET}"]
SILENCE_S = 5.0  # the workers' --silence-s default, the reference's too
# compared with the reference: every kind decided on the samples alone (not signal_lost, the one wall-clock
# alarm, which a cluster that stops delivering frames for longer than SILENCE_S rightly raises; nor the ones
# about this machine: beats shed, engine or output failed)
COMPARED = frozenset((*CLINICAL_KINDS, "noisy_signal", "leads_off"))
Transition = tuple[str, str, int, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env)


class _Collect:
    """Stands for the PUSH socket: keeps what a replay at full speed sends."""

    def __init__(self) -> None:
        self.messages: list[list[bytes]] = []

    def poll(self, timeout: int, flags: int) -> int:
        return flags

    def send_multipart(self, parts: list[bytes], flags: int = 0) -> None:
        self.messages.append(list(parts))


def reference(data_dir: str, records: list[str], chunk_s: float) -> set[Transition]:
    """The clinical alarm onsets and ends of the embedded monitor on the frames the replay sends."""
    refs = [resolve_record(name, data_dir, offline=True) for name in records]
    sink = _Collect()
    Replayer(refs, ReplayConfig(chunk_s=chunk_s, speed=None)).run(cast(Any, sink), threading.Event())
    config = MonitorConfig(engine_thread=False, silence_s=SILENCE_S, stream_timeout_s=600.0)
    monitor = Monitor(Source(endpoint="inproc://unused"), config, lockstep=True, record_alarms=True)
    for i in range(0, len(sink.messages), 40):
        monitor.process(sink.messages[i : i + 40])
    return {
        (e.stream, e.kind, e.onset_sample, e.state)
        for e in monitor.alarm_events
        if e.kind in COMPARED and e.state != "update"
    }


def score(alarms: list[tuple[float, dict[str, Any]]], expected: set[Transition]) -> dict[str, int]:
    records = [r for _, r in alarms]
    seen = Counter((r["alarm_id"], r["state"], r["sample"]) for r in records if r["state"] != "update")
    duplicated = sum(n - 1 for n in seen.values())
    open_: dict[tuple[str, str], str] = {}
    for r in records:
        pair = (r["stream"], r["kind"])
        if r["state"] == "onset":
            if pair in open_ and open_[pair] != r["alarm_id"]:  # raised again while open
                duplicated += 1
            open_[pair] = r["alarm_id"]
        elif r["state"] == "end" and open_.get(pair) == r["alarm_id"]:
            del open_[pair]
    read = {
        (r["stream"], r["kind"], r["onset_sample"], r["state"])
        for r in records
        if r["kind"] in COMPARED and r["state"] != "update"
    }
    return {
        "alarm_events_expected": len(expected),
        "alarm_events_lost": len(expected - read),
        "alarm_events_extra": len(read - expected),
        "alarm_events_duplicated": duplicated,
    }


class Observer:
    """What a scenario watches, on its own connection: worker progress, the alarm stream, the leases."""

    def __init__(self, servers: list[str], partitions: int) -> None:
        self.servers = servers
        self.partitions = partitions
        self.progress: list[tuple[float, str, dict[str, int]]] = []  # (wall time, worker, bed -> samples)
        self.alarms: list[tuple[float, dict[str, Any]]] = []  # (stream timestamp, transition)
        self.nc: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnected: list[float] = []  # wall times this client got a server again
        self.errors = 0

    async def start(self, dont_randomize: bool = False) -> None:
        async def on_error(exc: Exception) -> None:  # its server died: counted, the client reconnects
            self.errors += 1

        async def on_reconnect() -> None:
            self.reconnected.append(time.time())

        self.nc = await nats.connect(
            self.servers,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=on_error,
            reconnected_cb=on_reconnect,
            dont_randomize=dont_randomize,
        )

        async def on_progress(msg: Any) -> None:
            report = json.loads(msg.data)
            self.progress.append((float(report["at"]), str(report["worker"]), dict(report["beds"])))

        await self.nc.subscribe(f"{PROGRESS_SUBJECT}.*", cb=on_progress)
        self._tasks.append(asyncio.create_task(self._read_alarms()))

    async def _read_alarms(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        js = self.nc.jetstream(timeout=5.0)
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=30)
        sub = None
        while True:
            try:
                if sub is None:
                    sub = await js.pull_subscribe("ecg.alarms.*", durable="bridge", stream=ALARMS_STREAM, config=config)
                msgs = await sub.fetch(1000, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error:  # no leader for a while: asked again
                await asyncio.sleep(0.2)
                continue
            for msg in msgs:
                self.alarms.append((msg.metadata.timestamp.timestamp(), json.loads(msg.data)))
                with contextlib.suppress(nats.errors.Error):
                    await msg.ack()

    async def leases(self) -> list[dict[str, Any]]:
        kv = await self.nc.jetstream(timeout=5.0).key_value(OWNERS_BUCKET)
        out = []
        for p in range(self.partitions):
            try:
                out.append(lease_of((await kv.get(f"p{p}")).value))
            except nats.js.errors.KeyNotFoundError:
                out.append({})
        return out

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.nc.close()


def gaps(progress: list[tuple[float, str, dict[str, int]]], killed: float) -> dict[str, Any]:
    """Per bed, the times its analysed samples grew past their maximum; the gaps around the kill."""
    best: dict[str, int] = {}
    grew: dict[str, list[tuple[float, str]]] = {}
    for at, worker, beds in sorted(progress, key=lambda x: x[0]):
        for bed, n in beds.items():
            if n > best.get(bed, -1):
                best[bed] = n
                grew.setdefault(bed, []).append((at, worker))
    longest = baseline = 0.0
    worst = None
    resumed = 0.0
    for bed, times in grew.items():
        ts = [t for t, _ in times]
        gap, end = 0.0, None  # this bed's longest gap ending after the kill, and when it ended
        for a, b in itertools.pairwise(ts):
            if b <= killed:
                baseline = max(baseline, b - a)
            elif b - a > gap:
                gap, end = b - a, b
        if gap > longest:
            longest, worst = gap, bed
        if ts[0] < killed - 2.0 and end is not None:  # analysed before the kill, and after
            first = min(t for t in ts if t > killed)
            resumed = max(resumed, (end if gap > 1.0 else first) - killed)  # 1 s: four reports missed
    return {
        "grew": {bed: [(round(t - killed, 3), w) for t, w in times] for bed, times in sorted(grew.items())},
        "analysis_resumed_s": round(resumed, 3),
        "longest_gap_s": round(longest, 3),
        "longest_gap_bed": worst,
        "baseline_gap_s": round(baseline, 3),
    }


async def scenario(kind: str, args: argparse.Namespace, cluster: LocalCluster, expected: set[Transition]) -> dict:
    folder = cluster.folder
    common = ["-m", "monitor.cluster", "--cluster", cluster.url, "--partitions", str(args.partitions)]
    worker_args = ["--role", "worker", "--lease-s", str(args.lease_s), "--window-s", str(args.window_s)]
    ingest = f"tcp://127.0.0.1:{_free_port()}"
    procs = {name: _spawn([*common, *worker_args, "--name", name], folder / f"{name}.log") for name in ("A", "B")}
    procs["gateway"] = _spawn([*common, "--role", "gateway", "--ingest", ingest], folder / "gw.log")
    obs = Observer(cluster.urls, args.partitions)
    replay: subprocess.Popen[bytes] | None = None
    out: dict[str, Any] = {"scenario": kind}
    try:
        await obs.start()
        deadline = time.monotonic() + 90
        while True:  # both workers share the partitions
            with contextlib.suppress(nats.errors.Error):
                owners = Counter(le.get("owner") for le in await obs.leases())
                if owners.get("A") and owners.get("B") and sum(owners.values()) == args.partitions:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not share the partitions within 90 s")
            await asyncio.sleep(0.5)
        js = obs.nc.jetstream(timeout=5.0)
        if kind == "leader":
            victim = (await stream_leaders(js, [ALARMS_STREAM]))[ALARMS_STREAM]
            assert victim is not None
            await move_leaders(obs.nc, STREAMS, victim)
            out["killed_server"] = victim
            out["it_led"] = sorted(s for s, v in (await stream_leaders(js, STREAMS)).items() if v == victim)
            first = cluster.node(victim).url  # a client of the killed server, for the reconnect time
            await obs.stop()  # the durable alarm reader goes on where it was
            obs.servers = [first, *(u for u in cluster.urls if u != first)]
            await obs.start(dont_randomize=True)
        replay = _spawn(
            ["-m", "replay._cli", "--connect", ingest, "--data-dir", args.data_dir, "--offline",
             "--speed", str(args.speed), "--chunk-ms", str(round(args.chunk_s * 1000)), *args.record_names],
            folder / "replay.log",
        )  # fmt: skip
        started = time.monotonic()
        await asyncio.sleep(args.kill_after_s)
        before = await obs.leases()
        victim_parts = [p for p, le in enumerate(before) if le.get("owner") == "A"]
        killed = time.time()
        if kind == "worker":
            procs["A"].send_signal(signal.SIGKILL)
            procs["A"].wait(10)
            out["killed_worker_partitions"] = victim_parts
        else:
            cluster.kill(out["killed_server"])
            out["elected_s"] = await _elections(obs, out["killed_server"], killed)
        while kind == "worker" and time.time() - killed < 60:
            with contextlib.suppress(nats.errors.Error):
                mine = [(await obs.leases())[p] for p in victim_parts]
                if all(le.get("owner") == "B" and le.get("live") and le.get("live_at") for le in mine):
                    out["takeover_s"] = round(max(le["live_at"] for le in mine) - killed, 3)
                    break
            await asyncio.sleep(0.25)
        _, status, usage = await asyncio.to_thread(os.wait4, replay.pid, 0)
        replay.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        cpu = usage.ru_utime + usage.ru_stime
        out["load_generator"] = {"process": "ecg-replay (python -m replay._cli)", "cpu_s": round(cpu, 2),
                                 "wall_s": round(wall, 2), "cpu_percent": round(100 * cpu / wall, 1)}  # fmt: skip
        quiet, deadline = 0, time.monotonic() + 120
        while quiet < 10 and time.monotonic() < deadline:  # the alarm stream quiet (every stream ended)
            n = len(obs.alarms)
            await asyncio.sleep(0.5)
            quiet = quiet + 1 if len(obs.alarms) == n else 0
        back = [t for t in obs.reconnected if t > killed]
        out["observer_reconnected_s"] = round(min(back) - killed, 3) if back else None  # None: not connected to it
        after = [ts for ts, _ in obs.alarms if ts > killed]
        out["alarms_resumed_s"] = round(min(after) - killed, 3) if after else None
        out.update(score(obs.alarms, expected))
        out["alarm_events_read"] = len(obs.alarms)
        out["ended_by_takeover"] = sum(
            r.get("end_reason") == "ended while its worker was replaced" for _, r in obs.alarms
        )
        out["workers_alive"] = sorted(n for n, p in procs.items() if p.poll() is None)
        out.update(gaps(obs.progress, killed))
        if kind == "leader":  # every bed analysed again past what it was before the kill
            out["takeover_s"] = out["analysis_resumed_s"]
        out["signal_lost_raised"] = sum(r["kind"] == "signal_lost" and r["state"] == "onset" for _, r in obs.alarms)
        out["alarm_marks"] = [(round(ts - killed, 3), r["stream"], r["state"], r["category"]) for ts, r in obs.alarms
                              if r["state"] != "update"]  # fmt: skip
    finally:
        await obs.stop()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*procs.values(), *([replay] if replay is not None else [])]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return out


async def _elections(obs: Observer, victim: str, killed: float) -> dict[str, float | None]:
    """Per stream, seconds from the kill until a surviving server leads it (None: not within 60 s)."""
    js = obs.nc.jetstream(timeout=1.0)
    elected: dict[str, float | None] = dict.fromkeys(STREAMS)
    while time.time() - killed < 60 and any(v is None for v in elected.values()):
        for name in STREAMS:
            if elected[name] is None:
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    leader = (await stream_leaders(js, [name]))[name]
                    if leader not in (None, victim):
                        elected[name] = round(time.time() - killed, 3)
        await asyncio.sleep(0.1)
    return elected


def plot(results: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(r["grew"]) for r in results.values())
    fig, axes = plt.subplots(len(results), 1, figsize=(13, 1.5 + (1.2 + 0.25 * rows) * len(results)), squeeze=False)
    colours = {"A": "tab:blue", "B": "tab:orange"}
    for ax, (kind, r) in zip(axes[:, 0], results.items(), strict=True):
        beds = sorted(r["grew"])
        row = {bed: i for i, bed in enumerate(beds)}
        for bed, marks in r["grew"].items():
            for worker in colours:
                xs = [t for t, w in marks if w == worker]
                ax.scatter(xs, [row[bed]] * len(xs), s=3, color=colours[worker], label=f"analysed by {worker}")
        for state, marker in (("onset", "^"), ("end", "v")):
            for category, colour in (("clinical", "red"), ("technical", "purple")):
                pts = [(t, row[s]) for t, s, st, c in r["alarm_marks"] if st == state and c == category and s in row]
                if pts:
                    label = f"{category} alarm {state}"
                    ax.scatter(*zip(*pts, strict=True), marker=marker, s=18, color=colour, label=label, zorder=3)
        ax.axvline(0.0, color="black", lw=1.2, label="SIGKILL")
        ax.set_yticks(range(len(beds)), beds, fontsize=6)
        ax.set_xlabel("seconds from the SIGKILL")
        victim = "worker A" if kind == "worker" else f"NATS server {r.get('killed_server')} (leader of every stream)"
        ax.set_title(
            f"SIGKILL {victim}: analysis resumed {r['analysis_resumed_s']} s, longest bed gap {r['longest_gap_s']} s, "
            f"alarms lost {r['alarm_events_lost']}, duplicated {r['alarm_events_duplicated']}",
            fontsize=9,
        )
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/shared/data/mitdb")
    ap.add_argument("--records", nargs="+", default=["20"], help="a count (the first N of the list) or names")
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--chunk-s", type=float, default=1.0)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--lease-s", type=float, default=3.0)
    ap.add_argument("--window-s", type=float, default=5.0)
    ap.add_argument("--kill-after-s", type=float, default=40.0)
    ap.add_argument("--kill", nargs="+", choices=("worker", "leader"), default=["worker", "leader"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "failover.json")
    args = ap.parse_args()
    count = args.records[0] if len(args.records) == 1 and args.records[0].isdigit() else None
    args.record_names = RECORDS[: int(count)] if count is not None else args.records
    t = time.monotonic()
    expected = reference(args.data_dir, args.record_names, args.chunk_s)
    print(f"reference: {len(expected)} compared transitions ({time.monotonic() - t:.1f} s)", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for kind in args.kill:
        with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp), size=3) as cluster:
            results[kind] = asyncio.run(scenario(kind, args, cluster, expected))
        summary = {k: v for k, v in results[kind].items() if k not in ("grew", "alarm_marks")}
        print(json.dumps(summary), flush=True)
    command = "python benchmarks/failover.py " + " ".join(sys.argv[1:])
    machine = f"{platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()})"
    result = {
        "command": command,
        "machine": machine,
        "cpu_count": os.cpu_count(),
        "records": args.record_names,
        "speed": args.speed,
        "partitions": args.partitions,
        "lease_s": args.lease_s,
        "window_s": args.window_s,
        "kill_after_s": args.kill_after_s,
        "scenarios": {k: {n: v for n, v in r.items() if n not in ("grew", "alarm_marks")} for k, r in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"), f"{command}\n{machine}")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
