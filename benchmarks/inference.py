"""Inference engine benchmark: every backend present, batch sizes, and the batcher under load.

1. Throughput and per-batch latency (wall time of ``backend.infer``: images +
   CNN, from windows already at the representation rate) for batch sizes 1 to
   1024, per backend present; the ratio of each GPU backend to CUDA eager at the
   same batch size.
2. Image cost alone: NumPy/SciPy STFT vs CuPy STFT (when a GPU is present).
3. End to end through the batcher: N simulated streams each send a beat every
   RR (0.8 s, jittered) in real time; the driver queues them, runs due batches
   and measures, per beat, the time from ready to labelled. Reported: the share
   of beats within the budget, p50/p95/p99, and beats shed.

Beats are real: windows cut by the monitor from mitdb record 208. Run:
``python benchmarks/inference.py``; writes ``benchmarks/results/engine_<device>.json``
and ``engine_<device>.png``; the machine is named in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import wfdb

from engine import BACKENDS, DEFAULT_WEIGHTS, Batcher, BatcherConfig, CnnClassifier, discover
from monitor import beats_of_signal

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mitdb"


def machine() -> str:
    name = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        name += f", GPU {torch.cuda.get_device_name(0)}"
    return name


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def throughput(
    clf: CnnClassifier, windows: np.ndarray, rr: np.ndarray, batches: list[int], repeats: int
) -> list[dict[str, Any]]:
    rows = []
    for b in batches:
        idx = np.arange(b) % len(windows)
        w, r = windows[idx], rr[idx]
        for _ in range(5):
            clf.backend.infer(w, r)
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            clf.backend.infer(w, r)  # returns host numpy: includes the device round trip
            times.append(time.perf_counter() - t0)
        t = np.array(times)
        rows.append(
            {
                "batch": b,
                "beats_per_s": round(b / float(np.median(t)), 1),
                **{f"p{q}_ms": round(1e3 * float(np.percentile(t, q)), 3) for q in (50, 95, 99)},
            }
        )
        print(clf.backend.name, rows[-1], flush=True)
    return rows


def image_cost(clf: CnnClassifier, windows: np.ndarray, device: str, repeats: int) -> dict[str, Any]:
    from engine import Representer

    rep = Representer(clf.rep_cfg, device=device)
    w = windows[np.arange(1024) % len(windows)]
    if device == "cuda":
        import cupy

        w = cupy.asarray(w)
    for _ in range(3):
        rep(w)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        rep(w)
    if device == "cuda":
        import cupy

        cupy.cuda.Device().synchronize()
    dt = (time.perf_counter() - t0) / repeats
    return {"device": device, "batch": 1024, "ms_per_batch": round(1e3 * dt, 3), "images_per_s": round(1024 / dt, 1)}


def batcher_load(
    clf: CnnClassifier, windows: np.ndarray, rr: np.ndarray, streams: int, seconds: float, budget: float
) -> dict[str, Any]:
    """Real-time simulation: beats arrive on schedule; the driver classifies due batches."""
    rng = np.random.default_rng(streams)
    batcher: Batcher[Any] = Batcher(BatcherConfig(latency_budget_s=budget, max_batch=256))
    next_beat = rng.uniform(0, 0.8, streams)
    latencies: list[float] = []
    batch_costs: list[tuple[float, int, float]] = []  # (seconds, size, when in the run)

    class Item:
        __slots__ = ("i", "ready_at", "stream")

        def __init__(self, stream: str, ready_at: float, i: int) -> None:
            self.stream, self.ready_at, self.i = stream, ready_at, i

    t0 = time.monotonic()
    k = 0
    while True:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        due = np.flatnonzero(next_beat <= now)
        for s in due.tolist():
            batcher.on_beat(Item(f"s{s}", t0 + float(next_beat[s]), k))
            k += 1
            next_beat[s] += 0.8 * rng.uniform(0.8, 1.2)
        while (batch := batcher.on_deadline(time.monotonic())) is not None:
            idx = np.array([it.i % len(windows) for it in batch])
            start = time.perf_counter()
            clf.backend.infer(windows[idx], rr[idx])
            cost = time.perf_counter() - start
            batcher.on_done(len(batch), cost)
            batch_costs.append((cost, len(batch), start - t0))
            done = time.monotonic()
            latencies.extend(done - it.ready_at for it in batch)
        nd = batcher.next_deadline()
        wait = min(float(next_beat.min()) + t0, nd if nd is not None else np.inf) - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, 0.005))
    lat = np.array(latencies) if latencies else np.zeros(1)
    return {
        "streams": streams,
        "beats_per_s_offered": round(streams / 0.8, 1),
        "seconds": seconds,
        "beats_labelled": len(latencies),
        "shed": int(sum(batcher.stats.shed.values())),
        "within_budget_pct": round(100 * float(np.mean(lat <= budget)), 3),
        "budget_ms": budget * 1e3,
        **{f"p{q}_ms": round(1e3 * float(np.percentile(lat, q)), 2) for q in (50, 95, 99)},
        "batches": batcher.stats.batches,
        "mean_batch": round(batcher.stats.beats_out / max(batcher.stats.batches, 1), 1),
        "slowest_batches": [
            {"ms": round(1e3 * c, 2), "size": n, "at_s": round(at, 2)} for c, n, at in sorted(batch_costs)[-5:][::-1]
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="*", default=[1, 16, 64, 256, 1024])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--streams", type=int, nargs="*", default=[500, 2000, 5000])
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--budget-ms", type=float, default=50.0)
    p.add_argument(
        "--batcher-backends", nargs="*", help="backends run through the batcher (default: the best one present)"
    )
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    x = wfdb.rdrecord(str(args.data / "208"), channels=[0], sampto=360 * 600).p_signal[:, 0]
    beats = beats_of_signal(x, 360.0)
    found = discover()
    present = [b for b in BACKENDS if found[b] == "available"]
    result: dict[str, Any] = {
        "machine": machine(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/inference.py " + " ".join(sys.argv[1:]),
        "backends": found,
        "throughput": {},
        "images": [],
        "batcher": {},
    }
    clfs = {b: CnnClassifier.load(DEFAULT_WEIGHTS, backend=b) for b in present}
    windows, rr = clfs["cpu"].inputs(beats)
    for b, clf in clfs.items():
        result["throughput"][b] = throughput(clf, windows, rr, args.batches, args.repeats)
    result["images"].append(image_cost(clfs["cpu"], windows, "cpu", 10))
    if "cuda" in clfs:
        result["images"].append(image_cost(clfs["cuda"], windows, "cuda", 50))
        eager = {r["batch"]: r["beats_per_s"] for r in result["throughput"]["cuda"]}
        result["speedup_vs_cuda_eager"] = {
            b: {r["batch"]: round(r["beats_per_s"] / eager[r["batch"]], 2) for r in rows}
            for b, rows in result["throughput"].items()
            if b in ("compiled", "tensorrt")
        }
    for b in [x for x in (args.batcher_backends or present[:1]) if x in clfs]:
        result["batcher"][b] = {}
        for n in args.streams:
            row = batcher_load(clfs[b], windows, rr, n, args.seconds, args.budget_ms / 1000)
            result["batcher"][b][str(n)] = row
            print("batcher", b, row, flush=True)
    device = "gpu" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"engine_{device}.json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for b, rows in result["throughput"].items():
        a1.loglog([r["batch"] for r in rows], [r["beats_per_s"] for r in rows], marker="o", label=b)
        a2.loglog([r["batch"] for r in rows], [r["p99_ms"] for r in rows], marker="o", label=b)
    a1.set_xlabel("batch size")
    a1.set_ylabel("beats/s (images + CNN)")
    a2.set_xlabel("batch size")
    a2.set_ylabel("p99 batch latency (ms)")
    for a in (a1, a2):
        a.grid(alpha=0.3, which="both")
        a.legend()
    fig.suptitle(result["machine"])
    fig.tight_layout()
    fig.savefig(args.out / f"engine_{device}.png", dpi=120)


if __name__ == "__main__":
    main()
