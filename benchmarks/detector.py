"""R-peak detectors side by side: accuracy and CPU cost on MIT-BIH, and a noise stress test.

Protocol (design notes): all 48 mitdb records, first lead, whole records, a
detection matches a reference beat within 150 ms (ANSI/AAMI EC57), reference
beats = annotations with beat symbols. CPU time is process time of the
detector call alone (record already in memory), summed over records and given
per hour of ECG.

Detectors: ``ecg-monitor`` (the monitor's detection stage: DetectorBank plus
signal-quality gating, fed 10 s frames through the ingest, without ZeroMQ),
``ecg-monitor detector`` (StreamingDetector on the whole record, no quality
gating), sleepecg, neurokit2 (``ecg_clean`` + ``ecg_peaks``, method
``neurokit``) and wfdb XQRS.

Noise stress test: noise records ``bw``, ``em``, ``ma`` of the MIT-BIH Noise
Stress Test Database added to clean records (default 118 and 119, the ones nstdb
itself uses) with the ``nst`` protocol: 5 noise-free minutes, then 2 minutes
noisy and 2 minutes clean alternately; noise scaled for the requested SNR as
``nst`` does: S = (mean QRS peak-to-peak amplitude)^2 / 8 over the reference
beats, N = mean power of the noise in 1 s windows (mean removed), the largest
and smallest 5% of the measurements discarded in both. Scored from minute 5.

Run: ``python benchmarks/detector.py`` (needs the ``bench`` extra; data from
``$ECG_MONITOR_SHARED_DATA``, else ``../shared/data``). Writes
``benchmarks/results/detector_*.{json,csv,png}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import wfdb

from monitor import MatchResult, StreamingDetector, detect_beats, match_beats, reference_beats
from monitor.evaluation import nst_mix

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ECG_MONITOR_SHARED_DATA", ROOT.parent / "shared" / "data"))
SNRS = (24, 18, 12, 6, 0, -6)

Detector = Callable[[np.ndarray, float], np.ndarray]


def ours_monitor(x: np.ndarray, fs: float) -> np.ndarray:
    return detect_beats(x, fs)


def ours_detector(x: np.ndarray, fs: float) -> np.ndarray:
    det = StreamingDetector(fs)
    return np.concatenate((det.process(x), det.flush()))


def sleepecg_detect(x: np.ndarray, fs: float) -> np.ndarray:
    import sleepecg

    return np.asarray(sleepecg.detect_heartbeats(x, fs), dtype=np.int64)


def neurokit_detect(x: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    clean = nk.ecg_clean(x, sampling_rate=int(fs))
    _, info = nk.ecg_peaks(clean, sampling_rate=int(fs), method="neurokit")
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def xqrs_detect(x: np.ndarray, fs: float) -> np.ndarray:
    from wfdb import processing

    return np.asarray(processing.xqrs_detect(sig=x, fs=fs, verbose=False), dtype=np.int64)


DETECTORS: dict[str, Detector] = {
    "ecg-monitor": ours_monitor,
    "ecg-monitor detector": ours_detector,
    "sleepecg": sleepecg_detect,
    "neurokit2": neurokit_detect,
    "wfdb XQRS": xqrs_detect,
}


def timed(fn: Detector, x: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    t0 = time.process_time()
    peaks = fn(x, fs)
    return peaks, time.process_time() - t0


def load(db: Path, rec: str) -> tuple[np.ndarray, float, np.ndarray]:
    r = wfdb.rdrecord(str(db / rec), channels=[0])
    ann = wfdb.rdann(str(db / rec), "atr")
    return r.p_signal[:, 0].astype(np.float64), float(r.fs), reference_beats(ann.sample, ann.symbol)


def accuracy(db: Path, records: list[str], names: list[str]) -> list[dict[str, object]]:
    totals = {n: MatchResult(0, 0, 0) for n in names}
    cpu = dict.fromkeys(names, 0.0)
    hours = 0.0
    for rec in records:
        x, fs, ref = load(db, rec)
        hours += x.size / fs / 3600
        for n in names:
            if n != "ecg-monitor":
                DETECTORS[n](x[: int(10 * fs)], fs)  # warm up (imports, JIT) outside the timing
            peaks, t = timed(DETECTORS[n], x, fs)
            cpu[n] += t
            totals[n] = totals[n] + match_beats(ref, peaks, round(0.15 * fs))
        print(f"  {rec} done", flush=True)
    base = cpu.get("sleepecg")
    rows = []
    for n in names:
        m = totals[n]
        per_h = cpu[n] / hours
        rows.append(
            {
                "detector": n,
                "tp": m.tp,
                "fp": m.fp,
                "fn": m.fn,
                "se": round(m.se, 3),
                "ppv": round(m.ppv, 3),
                "f1": round(m.f1, 3),
                "cpu_s_per_hour": round(per_h, 4),
                "cost_vs_sleepecg": round(cpu[n] / base, 3) if base else None,
            }
        )
    return rows


def noise_stress(db: Path, noise_db: Path, records: list[str], names: list[str]) -> list[dict[str, object]]:
    rows = []
    for kind in ("em", "ma", "bw"):
        noise = wfdb.rdrecord(str(noise_db / kind), channels=[0]).p_signal[:, 0].astype(np.float64)
        for snr in SNRS:
            totals = {n: MatchResult(0, 0, 0) for n in names}
            for rec in records:
                x, fs, ref = load(db, rec)
                y = nst_mix(x, fs, ref, noise, snr)
                keep_from = int(300 * fs)
                ref_s = ref[ref >= keep_from]
                for n in names:
                    peaks = DETECTORS[n](y, fs)
                    totals[n] = totals[n] + match_beats(ref_s, peaks[peaks >= keep_from - 54], round(0.15 * fs))
            for n in names:
                m = totals[n]
                rows.append(
                    {
                        "noise": kind,
                        "snr_db": snr,
                        "detector": n,
                        "tp": m.tp,
                        "fp": m.fp,
                        "fn": m.fn,
                        "se": round(m.se, 2),
                        "ppv": round(m.ppv, 2),
                        "f1": round(m.f1, 2),
                    }
                )
            print(f"  noise {kind} {snr} dB done", flush=True)
    return rows


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({str(r["noise"]) for r in rows})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), kinds, strict=True):
        for det in dict.fromkeys(str(r["detector"]) for r in rows):
            pts = [(r["snr_db"], r["f1"]) for r in rows if r["noise"] == kind and r["detector"] == det]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=det)
        ax.set_title(f"noise: {kind}")
        ax.set_xlabel("SNR (dB)")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("F1 (%)")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle("R-peak detection under MIT-BIH NST noise (records 118, 119)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, {platform.system()}"


def table(rows: list[dict[str, object]], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--records", nargs="*", help="default: every mitdb record")
    p.add_argument("--noise-records", nargs="*", default=["118", "119"])
    p.add_argument("--detectors", nargs="*", default=list(DETECTORS))
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--skip-noise", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    db = args.data / "mitdb"
    records = args.records or (db / "RECORDS").read_text().split()
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/detector.py",
    }
    if not args.skip_accuracy:
        rows = accuracy(db, records, args.detectors)
        (args.out / "detector_accuracy.json").write_text(
            json.dumps({**meta, "records": records, "rows": rows}, indent=1)
        )
        with open(args.out / "detector_accuracy.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(table(rows, ["detector", "tp", "fp", "fn", "se", "ppv", "f1", "cpu_s_per_hour", "cost_vs_sleepecg"]))
    if not args.skip_noise:
        names = [n for n in args.detectors if n != "ecg-monitor detector"]
        rows = noise_stress(db, args.data / "nstdb-noise", args.noise_records, names)
        (args.out / "detector_noise.json").write_text(
            json.dumps({**meta, "records": args.noise_records, "rows": rows}, indent=1)
        )
        with open(args.out / "detector_noise.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        plot(rows, args.out / "detector_noise.png")
        print(table(rows, ["noise", "snr_db", "detector", "se", "ppv", "f1"]))


if __name__ == "__main__":
    main()
