"""Detection cost per stream as streams are added (multi-stream mode).

N streams of 360 Hz ECG (mitdb records, first lead, each stream starting at a
different offset) arrive in 100 ms chunks, as devices send them. Two stages are
timed with process time, after the signals are in memory:

* ``detector``: the DetectorBank alone (``bank.process`` over every stream's
  chunk, once per 100 ms tick);
* ``ingest``: the monitor's whole per-stream path without ZeroMQ: frame
  decoding and validation, sequence tracking, ring buffer, signal quality,
  detection and beat assembly (``Ingest.on_message`` per frame, ``step`` per
  tick).

Reported: CPU seconds per hour of ECG per stream, and the share of one core
that N real-time streams need (CPU time / signal time). Run:
``python benchmarks/detector_streams.py`` (mitdb from
``$ECG_MONITOR_SHARED_DATA``, else ``../shared/data``); writes
``benchmarks/results/detector_streams.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import wfdb

from monitor import DetectorBank, Ingest, encode_data

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ECG_MONITOR_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mitdb"
FS = 360.0
CHUNK = 36


def signals(n: int, seconds: float, db: Path) -> np.ndarray:
    recs = (db / "RECORDS").read_text().split()
    need = int(seconds * FS)
    cache: dict[str, np.ndarray] = {}
    out = np.empty((n, need))
    for i in range(n):
        rec = recs[i % len(recs)]
        if rec not in cache:
            cache[rec] = wfdb.rdrecord(str(db / rec), channels=[0]).p_signal[:, 0]
        x = cache[rec]
        start = (i // len(recs)) * 7919 % (x.size - need)
        out[i] = x[start : start + need]
    return out


def run_detector(x: np.ndarray) -> float:
    bank: DetectorBank[int] = DetectorBank(FS, capacity=x.shape[0])
    for i in range(x.shape[0]):
        bank.add(i)
    t0 = time.process_time()
    for pos in range(0, x.shape[1], CHUNK):
        bank.process({i: x[i, pos : pos + CHUNK] for i in range(x.shape[0])})
    return time.process_time() - t0


def run_ingest(x: np.ndarray) -> tuple[float, int]:
    kw = dict(channels=["MLII"], units=["mV"], gain=[200.0], baseline=[0.0])
    raw = np.round(x * 200).astype("<i2")
    frames = []
    for k, pos in enumerate(range(0, x.shape[1], CHUNK)):
        frames.append([encode_data(f"bed-{i}", k, pos, FS, raw[i, pos : pos + CHUNK], **kw) for i in range(x.shape[0])])  # type: ignore[arg-type]
    ingest = Ingest()
    beats = 0
    t0 = time.process_time()
    for tick in frames:
        for parts in tick:
            ingest.on_message(parts)
        beats += len(ingest.step())
    return time.process_time() - t0, beats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, nargs="*", default=[1, 10, 100, 1000])
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of ECG per stream")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    rows = []
    for n in args.streams:
        x = signals(n, args.seconds, args.data)
        det = run_detector(x)
        ing, beats = run_ingest(x)
        hours = n * args.seconds / 3600
        row = {
            "streams": n,
            "seconds_per_stream": args.seconds,
            "detector_cpu_s_per_stream_hour": round(det / hours, 4),
            "detector_core_share": round(det / args.seconds, 4),
            "ingest_cpu_s_per_stream_hour": round(ing / hours, 4),
            "ingest_core_share": round(ing / args.seconds, 4),
            "beats": beats,
        }
        rows.append(row)
        print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", "benchmarks/detector_streams.py", *sys.argv[1:]]),
        "chunk_samples": CHUNK,
        "fs": FS,
    }
    (args.out / "detector_streams.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [r["streams"] for r in rows]
    ax.loglog(ns, [r["detector_cpu_s_per_stream_hour"] for r in rows], marker="o", label="detector bank")
    ax.loglog(ns, [r["ingest_cpu_s_per_stream_hour"] for r in rows], marker="s", label="whole ingest path")
    ax.set_xlabel("concurrent streams (100 ms chunks, 360 Hz)")
    ax.set_ylabel("CPU s per hour of ECG per stream")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "detector_streams.png", dpi=120)
    print("| streams | detector CPU-s/h/stream | core share | ingest CPU-s/h/stream | core share (ingest) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['streams']} | {r['detector_cpu_s_per_stream_hour']} | {r['detector_core_share']} | "
            f"{r['ingest_cpu_s_per_stream_hour']} | {r['ingest_core_share']} |"
        )


if __name__ == "__main__":
    main()
