"""Whole-database accuracy through the monitor's own path (replay -> ZeroMQ -> detector -> .mon)."""

from __future__ import annotations

from pathlib import Path

import pytest
import wfdb

from monitor import MatchResult, match_beats
from monitor.cli._monitor import main
from monitor.evaluation import BEAT_SYMBOLS
from tests.conftest import reference


@pytest.mark.slow
def test_all_48_records_through_the_monitor(mitdb: Path, tmp_path: Path) -> None:
    # 1 s chunks: output is chunk-size independent (test_detector), and it keeps CI short.
    code = main(
        [
            "--source",
            "replay:mitdb",
            "--speed",
            "max",
            "--chunk-ms",
            "1000",
            "--data-dir",
            str(mitdb),
            "--annotations",
            str(tmp_path),
            "--view",
            "off",
        ]
    )
    assert code == 0
    total = MatchResult(0, 0, 0)
    records = (mitdb / "RECORDS").read_text().split()
    for rec in records:
        ann = wfdb.rdann(str(tmp_path / rec), "mon")  # beats, '+' rhythm and '~' quality annotations
        beats = [s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS]
        total = total + match_beats(reference(mitdb, rec), beats, 54)
    assert len(records) == 48
    # the detection goals: Se >= 99.6, +P >= 99.6, F1 >= 99.7
    assert total.se >= 99.6 and total.ppv >= 99.6 and total.f1 >= 99.7, total
