"""Do the monitor's decisions depend on the inference backend? Every backend present against the CPU.

The monitor replays the same records once per backend (``--speed max``, the
local engine, ``--backend NAME``) and keeps its annotations (beats with their
labels, rhythm changes) and its alarm log. Each backend is compared with the
CPU backend: beats at the same samples, the same labels, the same rhythm
annotations, the same alarm episodes (kind, onset and end sample). The CPU
backend is run twice, so the comparison's own noise floor is in the table.

Run: ``python benchmarks/backends_agree.py --data-dir ../shared/data/mitdb``
(records default: DS2); writes ``benchmarks/results/backends_<cpu|gpu>.json``
with the machine named.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import wfdb
from inference import machine  # the same machine line as the inference benchmark

from engine import discover
from engine._backends import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
DS2 = "100,103,105,111,113,117,121,123,200,202,210,212,213,214,219,221,222,228,231,232,233,234"


def run_monitor(backend: str, records: str, data_dir: Path, out: Path) -> float:
    """One replay of every record at once; returns its wall time in seconds."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-c",
        "import sys; from monitor.cli._monitor import main; sys.exit(main())",
        "--source",
        f"replay:{records}",
        "--data-dir",
        str(data_dir),
        "--speed",
        "max",
        "--view",
        "off",
        "--offline",
        "--annotations",
        str(out),
        "--alarm-log",
        str(out / "alarms.sqlite"),
        "--backend",
        backend,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    (out / "monitor.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"--backend {backend} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def annotations(folder: Path, record: str) -> tuple[dict[int, str], list[tuple[int, str]]]:
    ann = wfdb.rdann(str(folder / record), "mon")
    beats = {int(s): sym for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym != "+"}
    rhythm = [(int(s), note) for s, sym, note in zip(ann.sample, ann.symbol, ann.aux_note, strict=True) if sym == "+"]
    return beats, rhythm


def alarm_rows(folder: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(folder / "alarms.sqlite") as db:
        rows = db.execute(
            "SELECT stream, kind, state, onset_sample, sample, COALESCE(end_reason, '') FROM alarms"
            " WHERE state != 'update' ORDER BY stream, onset_sample, kind, state"
        ).fetchall()
    return [tuple(r) for r in rows]


def compare(ref: Path, other: Path, records: list[str]) -> dict[str, Any]:
    beats = same_place = same_label = other_beats = 0
    rhythm_same = 0
    differing: list[dict[str, Any]] = []
    for rec in records:
        b_ref, r_ref = annotations(ref, rec)
        b_oth, r_oth = annotations(other, rec)
        beats += len(b_ref)
        other_beats += len(b_oth)
        common = set(b_ref) & set(b_oth)
        same_place += len(common)
        for s in sorted(common):
            if b_ref[s] == b_oth[s]:
                same_label += 1
            elif len(differing) < 50:
                differing.append({"record": rec, "sample": s, "cpu": b_ref[s], "other": b_oth[s]})
        rhythm_same += int(r_ref == r_oth)
    a_ref, a_oth = alarm_rows(ref), alarm_rows(other)
    return {
        "beats_cpu": beats,
        "beats_at_same_sample": same_place,
        "beats_missing_or_extra": (beats - same_place) + (other_beats - same_place),
        "same_label": same_label,
        "label_agreement_pct": round(100 * same_label / max(same_place, 1), 4),
        "records_with_identical_rhythm": f"{rhythm_same}/{len(records)}",
        "alarm_rows_cpu": len(a_ref),
        "alarm_rows_identical": a_ref == a_oth,
        "alarm_rows_only_cpu": [list(r) for r in sorted(set(a_ref) - set(a_oth))][:20],
        "alarm_rows_only_other": [list(r) for r in sorted(set(a_oth) - set(a_ref))][:20],
        "label_differences": differing,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder of the WFDB records")
    p.add_argument("--records", default=DS2, help="comma-separated records (default: mitdb DS2)")
    p.add_argument("--backends", nargs="*", help="backends to compare with cpu (default: every one present)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    records = [r for r in args.records.split(",") if r]
    found = discover()
    names = args.backends or [b for b in BACKENDS if b != "cpu" and found[b] == "available"]
    result: dict[str, Any] = {
        "machine": machine(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/backends_agree.py " + " ".join(sys.argv[1:]),
        "records": records,
        "backends": found,
        "wall_s": {},
        "against_cpu": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ["cpu", "cpu-again", *names]:
            backend = "cpu" if name == "cpu-again" else name
            try:
                result["wall_s"][name] = round(run_monitor(backend, ",".join(records), args.data_dir, work / name), 2)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                result["against_cpu"][name] = {"error": str(exc)}
                print(name, "failed:", exc, flush=True)
                continue
            if name != "cpu":
                result["against_cpu"][name] = compare(work / "cpu", work / name, records)
                summary = {k: v for k, v in result["against_cpu"][name].items() if not isinstance(v, list)}
                print(name, result["wall_s"][name], "s", summary, flush=True)
    device = "gpu" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"backends_{device}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("written", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
