"""The cross-database report at full size: how beats and alarms hold beyond the data the model was chosen on.

Runs ``ecg-eval --db ...`` once over every database found under the shared
data folder (``$ECG_MONITOR_SHARED_DATA``, else ``../shared/data``):

* ``mitdb-ds2``: mitdb DS2, the inter-patient test split (22 records);
* ``qtdb-other``: the 67 qtdb records (250 Hz) from databases other than mitdb
  (MIT-BIH Normal Sinus Rhythm, Long-Term, Supraventricular Arrhythmia, ST
  Change, European ST-T, Sudden Death);
* ``qtdb-mitdb``: the 14 qtdb records that are excerpts of mitdb records
  (resampled to 250 Hz; 114, 116, 223 and 230 are DS1 training patients);
* ``vfdb-418-424`` and ``vfdb-425-430``: the vfdb records (rhythm annotations
  only: alarms, no beat table), in the halves the alarm thresholds were chosen
  on and were not;
* ``nst-em0``, ``nst-em6``, ``nst-ma0``: noise stress mixes on the nst protocol
  of mitdb 118 and 119 (DS1 records: noise robustness, not unseen patients)
  with nstdb's electrode-motion noise at 0 and 6 dB and muscle artefact at 0 dB.

Writes ``benchmarks/results/generalization.json`` (every database's tables,
per record included, with the machine, the command and the model),
``generalization.md`` (the report's tables), ``generalization.png`` (per
database: QRS, VEB and SVEB F1; alarm episode +P and false alarms per hour)
and, per database, its single-database reports under
``benchmarks/results/generalization/NAME/`` (``report.md``/``.json`` and
``confusion.png`` where it has beats, ``alarms.md``/``.json``).

Run: ``nice python benchmarks/generalization.py`` (several minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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


#: qtdb records that are excerpts of mitdb records (the others come from six other databases)
QTDB_FROM_MITDB = (
    "sel100 sel102 sel103 sel104 sel114 sel116 sel117 sel123 sel213 sel221 sel223 sel230 sel231 sel232".split()
)
VFDB_TUNING = tuple(str(r) for r in range(418, 425))  # alarm thresholds were chosen on these (and on mitdb)

#: What each database was used for before it is scored here (quote it with every figure).
PROVENANCE = {
    "mitdb-ds2": "never used to train or choose the classifier (DS1 only); alarm thresholds chosen on mitdb",
    "qtdb-other": "used to choose the classifier (model selection); never used to choose an alarm threshold",
    "qtdb-mitdb": "excerpts of mitdb: 4 DS1 (training) patients, DS2 ones never used for model selection",
    "vfdb-418-424": "alarm thresholds (VT/VF) chosen on these records",
    "vfdb-425-430": "never used to choose a threshold or a model",
    "nst-em0": "mitdb 118/119 (DS1 training records) with noise: noise robustness, not unseen patients",
}


def _listed(data: Path, folder: str) -> list[str]:
    return (data / folder / "RECORDS").read_text().split()


def databases(data: Path) -> list[str]:
    """The ``--db`` arguments for what is found under ``data``."""
    out = []
    if (data / "mitdb" / "RECORDS").is_file():
        out.append(f"mitdb-ds2={data / 'mitdb'}:ds2")
    if (data / "qtdb" / "RECORDS").is_file():
        qt = _listed(data, "qtdb")
        other = [r for r in qt if r not in QTDB_FROM_MITDB]
        mit = [r for r in qt if r in QTDB_FROM_MITDB]
        out += [f"qtdb-other={data / 'qtdb'}:{','.join(other)}", f"qtdb-mitdb={data / 'qtdb'}:{','.join(mit)}"]
    if (data / "vfdb" / "RECORDS").is_file():
        vf = _listed(data, "vfdb")
        tuning = [r for r in vf if r in VFDB_TUNING]
        held = [r for r in vf if r not in VFDB_TUNING]
        out += [f"vfdb-418-424={data / 'vfdb'}:{','.join(tuning)}", f"vfdb-425-430={data / 'vfdb'}:{','.join(held)}"]
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
    keep = args.out / "generalization"
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
        shutil.rmtree(keep, ignore_errors=True)
        for sub in sorted(p for p in Path(tmp).iterdir() if p.is_dir()):  # each database's own reports
            shutil.copytree(sub, keep / sub.name)
    report.update(
        provenance={name: PROVENANCE.get(name, PROVENANCE["nst-em0"]) for name in report.get("databases", {})},
        machine=machine(),
        python=platform.python_version(),
        date=time.strftime("%Y-%m-%d"),
        git_commit=git_commit(),
        benchmark_command="nice python benchmarks/generalization.py",
        wall_s=round(wall, 1),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generalization.json").write_text(json.dumps(report, indent=1))
    notes = "\n".join(f"- **{k}**: {v}" for k, v in report["provenance"].items())
    markdown += f"\n## What each database was used for before it was scored here\n\n{notes}\n"
    (args.out / "generalization.md").write_text(markdown)
    plot(report, args.out / "generalization.png")
    print(markdown)
    print(f"generalization: {len(dbs)} databases in {wall:.0f} s; results in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
