"""Classifier throughput on the CPU: spectrogram + CNN per batch of beats.

Beats are real windows (mitdb record 100, 360 Hz, as the monitor cuts them)
resampled, turned into STFT log-spectrograms and classified by the shipped
model, batch after batch; each batch is timed with a wall clock (warm-up
batches excluded). Run: ``python benchmarks/classifier_throughput.py``; writes
``benchmarks/results/classifier_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import wfdb

from engine import DEFAULT_WEIGHTS, CnnClassifier
from monitor import beats_of_signal

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mitdb"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="*", default=[1, 16, 64, 256, 1024])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clf = CnnClassifier.load(args.weights)
    x = wfdb.rdrecord(str(DATA / "100"), channels=[0]).p_signal[:, 0]
    beats = beats_of_signal(x, 360.0)
    rows = []
    for b in args.batches:
        batch = [beats[i % len(beats)] for i in range(b)]
        for _ in range(3):
            clf.classify(batch)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            clf.classify(batch)
            times.append(time.perf_counter() - t0)
        t = np.array(times)
        row = {
            "batch": b,
            "beats_per_s": round(b / float(np.median(t)), 1),
            "p50_ms": round(1e3 * float(np.percentile(t, 50)), 2),
            "p95_ms": round(1e3 * float(np.percentile(t, 95)), 2),
            "p99_ms": round(1e3 * float(np.percentile(t, 99)), 2),
        }
        rows.append(row)
        print(row, flush=True)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "device": "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": str(args.weights.name),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/classifier_throughput.py",
        "what": "wall time of CnnClassifier.classify: resampling, STFT log-spectrogram, RR features, CNN",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classifier_throughput.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
