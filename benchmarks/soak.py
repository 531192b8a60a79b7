"""Soak: a fixed number of real-time streams through the whole monitor for a long run.

The set-up of ``benchmarks/load.py`` (N simulated devices in a separate
process over TCP loopback, ``ecg-monitor`` as a subprocess with one PyTorch
thread) held for ``--minutes`` (default 30) at ``--streams`` (default 1000).
Every 10 s the monitor's resident memory (``VmRSS`` of /proc/PID/status) and
CPU time are sampled. Reported: RSS over time, its growth from the end of the
warm-up (the first ``--warmup-min`` minutes, default 2) to the end of the run,
samples lost, the intake lag, and latency percentiles (beat ready -> label
published) over the run after warm-up.

Run: ``python benchmarks/soak.py [--streams 1000] [--minutes 30]``; writes
``benchmarks/results/soak.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from load import CHUNK, DATA, RESULTS, Run, cpu_seconds, lag_series, machine, percentiles, received, rss_mb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--warmup-min", type=float, default=2.0, help="minutes before the growth baseline")
    p.add_argument("--every", type=float, default=10.0, help="seconds between memory samples")
    p.add_argument("--drain", type=float, default=15.0)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    total = args.minutes * 60
    run = Run(args.streams, total, args.data, Path("/tmp") / f"soak-monitor-{args.streams}.log")
    t0 = time.time()
    samples: list[dict[str, Any]] = []
    try:
        while time.time() - t0 < total:
            now = time.time()
            samples.append(
                {
                    "t_s": round(now - t0, 1),
                    "rss_mb": round(rss_mb(run.monitor.pid), 2),
                    "monitor_cpu_s": round(cpu_seconds(run.monitor.pid), 2),
                }
            )
            print(json.dumps(samples[-1]), flush=True)
            time.sleep(max(0.0, args.every - (time.time() - now)))
    finally:
        end = run.finish(args.drain)
    warm = args.warmup_min * 60
    after = [s for s in samples if s["t_s"] >= warm]
    base = after[0] if after else samples[0]
    last = samples[-1]
    growth = 100 * (last["rss_mb"] / base["rss_mb"] - 1)
    peak = max(s["rss_mb"] for s in after) if after else last["rss_mb"]
    sent = int(end["final"]["frames"])
    st = run.collector.status[-1]
    got = received(st)
    lat = run.collector.window(t0 + warm, t0 + total)
    lags = lag_series(run, t0 + warm, t0 + total)
    span = last["t_s"] - base["t_s"]
    result = {
        "machine": machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": ("python benchmarks/soak.py " + " ".join(sys.argv[1:])).strip(),
        "monitor_command": "OMP_NUM_THREADS=1 " + " ".join(["ecg-monitor", *run.cmd[1:]]),
        "streams": args.streams,
        "minutes": round((samples[-1]["t_s"]) / 60, 2),
        "warmup_min": args.warmup_min,
        "rss_mb_end_of_warmup": base["rss_mb"],
        "rss_mb_end": last["rss_mb"],
        "rss_mb_peak_after_warmup": peak,
        "rss_growth_pct": round(growth, 2),
        "samples_sent": sent * CHUNK,
        "samples_received": got * CHUNK,
        "samples_lost": max(0, sent - got) * CHUNK,
        "rejected_frames": sum(int(v) for v in st.get("rejected", {}).values()),
        "lag_s_max": round(max(lags), 3) if lags else None,
        "beats_measured": len(lat),
        **percentiles(lat),
        "monitor_cpu_pct": round(100 * (last["monitor_cpu_s"] - base["monitor_cpu_s"]) / span, 1) if span else None,
        "shed": st.get("shed"),
        "late_beats": st.get("late"),
        "health": st.get("health"),
        "device_late_ms_p99": end["final"].get("late_ms_p99"),
        "rss": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s["t_s"] / 60 for s in samples], [s["rss_mb"] for s in samples], lw=1.2)
    ax.axvline(args.warmup_min, color="grey", ls=":", lw=1)
    ax.set_xlabel("minutes")
    ax.set_ylabel("monitor resident memory (MB)")
    ax.set_title(
        f"{args.streams} streams, {result['minutes']:.0f} min: RSS {growth:+.2f}% after warm-up, "
        f"{result['samples_lost']} samples lost",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / "soak.png", dpi=120)
    print(json.dumps({k: v for k, v in result.items() if k != "rss"}, indent=1))


if __name__ == "__main__":
    main()
