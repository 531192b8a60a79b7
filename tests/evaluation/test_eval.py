from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from monitor.evaluation import score_record, summarize


def write(dirpath: Path, name: str, ext: str, samples: list[int], symbols: list[str]) -> None:
    wfdb.wrann(name, ext, np.array(samples), symbols, fs=360, write_dir=str(dirpath))


def test_ec57_statistics_from_annotation_files(tmp_path: Path) -> None:
    # reference: N N V S N V F N ; the monitor: misses the 2nd N, calls a V "N",
    # an S "V", adds a spurious "A", and labels the rest right.
    ref = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]
    write(tmp_path, "r1", "atr", ref, ["N", "N", "V", "A", "N", "V", "F", "+"])
    write(tmp_path, "r1", "mon", [1010, 3005, 3990, 4500, 5000, 6020, 7000], ["N", "N", "V", "A", "N", "V", "F"])
    s = score_record(tmp_path, tmp_path, "r1")
    c = s.confusion
    assert s.qrs == (6, 1, 1)  # 6 matched, 1 spurious, 1 missed ('+' is no beat)
    assert c[0, 0] == 2 and c[0, 5] == 1  # N: two right, one missed
    assert c[2, 0] == 1 and c[2, 2] == 1  # V: one called N, one right
    assert c[1, 2] == 1  # S called V
    assert c[5, 1] == 1  # spurious detection labelled S
    g = summarize([s])["gross"]
    assert g["veb_se"] == pytest.approx(50.0)
    assert g["veb_ppv"] == pytest.approx(50.0)  # 1 right V, 1 S called V
    assert g["sveb_se"] == pytest.approx(0.0)
    assert g["sveb_ppv"] == pytest.approx(0.0)  # the only S label is the spurious one
    assert g["accuracy"] == pytest.approx(100 * 4 / 6)
    assert g["qrs_se"] == pytest.approx(100 * 6 / 7)


def test_ecg_eval_runs_the_monitor_and_writes_the_report(mitdb: Path, tmp_path: Path) -> None:
    import json

    from engine import DEFAULT_WEIGHTS
    from monitor.cli._eval import main

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped weights")
    out = tmp_path / "report"
    assert main(["--data-dir", str(mitdb), "--records", "100,103", "--out", str(out), "--chunk-ms", "1000"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["per_record"]) == {"100", "103"}
    assert report["gross"]["qrs_se"] > 99.5 and report["gross"]["accuracy"] > 90
    assert (out / "report.md").read_text().startswith("# EC57 report")
    assert (out / "confusion.png").stat().st_size > 1000
