"""The cross-database report at full size: how beats and alarms hold beyond the data the model was chosen on.

Runs ``ecg-eval --db ...`` once over every database found under the shared
data folder (``$ECG_MONITOR_SHARED_DATA``, else ``../shared/data``):

* ``mitdb-ds2``: mitdb DS2, the inter-patient test split (22 records);
* ``qtdb``: all 81 qtdb records (250 Hz; mixed sources);
* ``vfdb``: the vfdb records (rhythm annotations only: alarms, no beat table);
* ``nst-em0``, ``nst-em6``, ``nst-ma0``: noise stress mixes on the nst protocol
  of mitdb 118 and 119 (DS1 records: noise robustness, not unseen patients)
  with nstdb's electrode-motion noise at 0 and 6 dB and muscle artefact at 0 dB.

Writes ``benchmarks/results/generalization.json`` (every database's tables,
per record included, with the machine, the command and the model),
``generalization.md`` (the report's tables) and ``generalization.png`` (per
database: QRS, VEB and SVEB F1; alarm episode +P and false alarms per hour).

Run: ``nice python benchmarks/generalization.py`` (several minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ECG_MONITOR_SHARED_DATA", ROOT.parent / "shared" / "data"))
NST = (("em", 0), ("em", 6), ("ma", 0))
NST_RECORDS = "118,119"
ALARM_TYPES_SHOWN = ("VF/VFL + VT", "VT (any run alarm)", "AF", "asystole")


def databases(data: Path) -> list[str]:
    """The ``--db`` arguments for what is found under ``data``."""
    out = []
    for name, folder, records in (("mitdb-ds2", "mitdb", "ds2"), ("qtdb", "qtdb", "all"), ("vfdb", "vfdb", "all")):
        if (data / folder / "RECORDS").is_file():
            out.append(f"{name}={data / folder}:{records}")
    if (data / "mitdb").is_dir() and (data / "nstdb-noise").is_dir():
        out += [f"nst-{noise}{snr}=nst:{noise}:{snr}:{NST_RECORDS}" for noise, snr in NST]
    return out


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _f1(se: float | None, ppv: float | None) -> float:
    if se is None or ppv is None or se + ppv == 0:
        return float("nan")
    return 2 * se * ppv / (se + ppv)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dbs = report["databases"]
    names = list(dbs)
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    series = {
        "QRS": [
            _f1(d["beats"]["gross"]["qrs_se"], d["beats"]["gross"]["qrs_ppv"]) if d["beats"] else np.nan
            for d in dbs.values()
        ],
        "VEB": [
            d["beats"]["gross"]["veb_f1"] if d["beats"] and d["beats"]["gross"]["veb_f1"] is not None else np.nan
            for d in dbs.values()
        ],
        "SVEB": [
            d["beats"]["gross"]["sveb_f1"] if d["beats"] and d["beats"]["gross"]["sveb_f1"] is not None else np.nan
            for d in dbs.values()
        ],
    }
    w = 0.26
    for i, (label, vals) in enumerate(series.items()):
        ax.bar(x + (i - 1) * w, vals, w, label=f"{label} F1")
    for xi, d in zip(x, dbs.values(), strict=True):
        if not d["beats"]:
            ax.text(xi, 50, "no beat\nannotations", ha="center", va="center", fontsize=7, rotation=90)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (%), gross")
    ax.set_title("beats (EC57)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    types = ALARM_TYPES_SHOWN
    w = 0.8 / len(types)
    for k, (metric, label, title) in enumerate(
        (
            ("ppv", "+P (%)", "alarm episodes: positive predictivity"),
            ("false_per_hour", "false / h", "false alarm episodes per hour"),
        )
    ):
        ax = axes[k + 1]
        for i, t in enumerate(types):
            vals = []
            for d in dbs.values():
                row = next(r for r in d["alarms"]["0.0"] if r["type"] == t)
                v = row[metric]
                vals.append(np.nan if v is None or (metric == "ppv" and not row["alarm_episodes"]) else v)
            xs = x + (i - (len(types) - 1) / 2) * w
            ax.bar(xs, vals, w, label=t)
            for xi, v in zip(xs, vals, strict=True):
                if not np.isnan(v) and (v > 0 or metric == "ppv"):
                    text = f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.1f}"
                    ax.text(xi, v, text, ha="center", va="bottom", fontsize=6)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if k == 0:
            ax.set_ylim(0, 100)
            ax.legend(fontsize=8)
        else:
            ax.set_yscale("symlog", linthresh=1)
    fig.suptitle(f"Cross-database report, model: {report['model']} ({report['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="the shared data folder (mitdb, qtdb, vfdb, nstdb-noise)")
    p.add_argument("--model", help="classifier weights (default: the shipped model)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    dbs = databases(args.data)
    if not dbs:
        print(f"generalization: no database under {args.data}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        argv = [f"--db={d}" for d in dbs]
        # 1 s replay chunks: the same beats and alarms as any chunk size (sample time), fewer lockstep turns
        argv += ["--data-dir", str(args.data), "--chunk-ms", "1000", "--out", tmp, "--log-level", "error"]
        if args.model:
            argv += ["--model", args.model]
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "monitor.cli._eval", *argv], cwd=ROOT)
        wall = time.monotonic() - t0
        if code != 0:
            print(f"generalization: ecg-eval failed (exit {code})", file=sys.stderr)
            return code
        report = json.loads((Path(tmp) / "report.json").read_text())
        markdown = (Path(tmp) / "report.md").read_text()
    report.update(
        machine=machine(),
        python=platform.python_version(),
        date=time.strftime("%Y-%m-%d"),
        git_commit=git_commit(),
        benchmark_command="nice python benchmarks/generalization.py",
        wall_s=round(wall, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generalization.json").write_text(json.dumps(report, indent=1))
    (args.out / "generalization.md").write_text(markdown)
    plot(report, args.out / "generalization.png")
    print(markdown)
    print(f"generalization: {len(dbs)} databases in {wall:.0f} s; results in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
