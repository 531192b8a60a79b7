"""The cross-database report: ``--db`` arguments, scoring after a learning period, and a run over slices of
real databases whose tables must equal the single-database ``ecg-eval``'s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import wfdb

from monitor.errors import ConfigError
from monitor.evaluation import parse_database, score_record, summarize
from tests.conftest import SHARED_DATA


@pytest.mark.parametrize(
    ("text", "name", "folder", "records"),
    [
        ("mitdb=/data/mitdb:ds2", "mitdb", "/data/mitdb", "ds2"),
        ("/data/qtdb", "qtdb", "/data/qtdb", "all"),
        ("vf=/data/vfdb:418,419", "vf", "/data/vfdb", "418,419"),
        ("qtdb:sel100", "qtdb", "/base/qtdb", "sel100"),  # relative: under the base folder
        ("x=/a:b/c", "x", "/a:b/c", "all"),  # a colon inside the path is no record list
    ],
)
def test_a_folder_database(text: str, name: str, folder: str, records: str) -> None:
    spec = parse_database(text, Path("/base"))
    assert (spec.name, spec.folder, spec.records, spec.is_nst) == (name, Path(folder), records, False)


def test_a_noise_mix_database() -> None:
    spec = parse_database("nst:em:0")
    assert (spec.name, spec.noise, spec.snr_db, spec.records, spec.folder) == ("nst-em0", "em", 0, "118,119", None)
    spec = parse_database("stress=nst:ma:-6:118")
    assert (spec.name, spec.noise, spec.snr_db, spec.records) == ("stress", "ma", -6, "118")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=", "give a folder"),
        ("nst:em", "a noise mix is nst:NOISE:SNR"),
        ("nst:em:zero", "SNR 'zero' is not a whole number of dB"),
        ("nst:em:1.5", "is not a whole number"),
        ("a b=/data", "name 'a b' must be letters"),
    ],
)
def test_bad_database_arguments_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_database(text)


def test_scoring_from_a_start_sample_leaves_the_learning_period_out(tmp_path: Path) -> None:
    ref = [1000, 2000, 3000, 4000, 5000]
    wfdb.wrann("r", "atr", np.array(ref), ["N", "V", "N", "N", "N"], fs=360, write_dir=str(tmp_path))
    # detections: a spurious one and a miss before the start, one 30 samples early for the beat at 3000
    wfdb.wrann("r", "mon", np.array([500, 1000, 2980, 3990, 4500, 5000]), ["V", "N", "N", "N", "N", "N"], fs=360,
               write_dir=str(tmp_path))  # fmt: skip
    whole = score_record(tmp_path, tmp_path, "r")
    assert whole.qrs == (4, 2, 1)
    late = score_record(tmp_path, tmp_path, "r", start=3000)
    assert late.qrs == (3, 1, 0)  # 2980 still matches the beat at 3000; 4500 is the one spurious detection
    assert summarize([late])["gross"]["veb_se"] is None  # the V at 2000 is in the learning period


def _cut(src: Path, dst: Path, name: str, seconds: float) -> None:
    """The first ``seconds`` of a record and its reference annotations, as a record of its own."""
    header = wfdb.rdheader(str(src / name))
    sampto = int(seconds * header.fs)
    rec = wfdb.rdrecord(str(src / name), sampto=sampto, physical=False)
    dst.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=rec.fs, units=rec.units, sig_name=rec.sig_name, d_signal=rec.d_signal, fmt=rec.fmt,
                adc_gain=rec.adc_gain, baseline=rec.baseline, write_dir=str(dst))  # fmt: skip
    ann = wfdb.rdann(str(src / name), "atr", sampto=sampto)
    wfdb.wrann(name, "atr", ann.sample, ann.symbol, aux_note=ann.aux_note, fs=rec.fs, write_dir=str(dst))


@pytest.fixture
def slices(tmp_path: Path) -> Path:
    """Two minutes of two mitdb, two qtdb and one vfdb record; 118 to 5.5 minutes for a noise mix."""
    needed = [SHARED_DATA / d / "RECORDS" for d in ("mitdb", "qtdb", "vfdb")]
    if not all(p.is_file() for p in needed) or not (SHARED_DATA / "nstdb-noise" / "em.hea").is_file():
        pytest.skip(f"mitdb, qtdb, vfdb and nstdb-noise not all found under {SHARED_DATA}")
    from engine import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("no shipped weights")
    for db, records in (("mitdb", ("100", "119")), ("qtdb", ("sel100", "sel102")), ("vfdb", ("418",))):
        for r in records:
            _cut(SHARED_DATA / db, tmp_path / db, r, 120.0)
    _cut(SHARED_DATA / "mitdb", tmp_path / "clean", "118", 330.0)
    return tmp_path


def test_the_cross_database_report_over_slices_of_real_databases(
    slices: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli._eval import main

    out = tmp_path / "report"
    argv = ["--db", f"mit={slices / 'mitdb'}:100,119", "--db", "qtdb:sel100,sel102", "--db", "vfdb:418"]
    argv += ["--db", "nst:em:0:118", "--nst-clean", str(slices / "clean")]
    argv += ["--nst-noise", str(SHARED_DATA / "nstdb-noise"), "--data-dir", str(slices), "--out", str(out)]
    assert main([*argv, "--log-level", "error"]) == 0
    report = json.loads((out / "report.json").read_text())
    dbs = report["databases"]
    assert list(dbs) == ["mit", "qtdb", "vfdb", "nst-em0"]
    for name in ("mit", "qtdb"):
        beats = dbs[name]["beats"]
        assert beats["gross"]["qrs_se"] > 99 and beats["gross"]["qrs_ppv"] > 99
        assert set(beats["per_record"]) == set(dbs[name]["records"])
        assert 50 <= beats["average"]["accuracy"] <= 100 and dbs[name]["hours"] == pytest.approx(2 * 2 / 60)
    assert dbs["vfdb"]["beats"] is None and "no beat annotations" in dbs["vfdb"]["notes"][0]
    nst = dbs["nst-em0"]
    assert nst["records"] == ["118e00"] and "118 in DS1" in nst["notes"][1]
    confusion = np.asarray(nst["beats"]["confusion"])
    assert 30 < confusion[:5, :].sum() < 60  # the beats of the 30 s scored after the learning period
    for d in dbs.values():
        kinds = [row["type"] for row in d["alarms"]["0.0"]]
        assert "VF/VFL + VT" in kinds and "AF" in kinds and "5.0" in d["alarms"]
        assert all(row["false_per_hour"] is not None and row["false_per_hour"] >= 0 for row in d["alarms"]["0.0"])
    md = (out / "report.md").read_text()
    assert md.startswith("# Cross-database report: mit, qtdb, vfdb, nst-em0")
    assert "| vfdb | 1 | 0.03 |" + " n/a |" * 8 in md and "## Alarm episodes" in md
    for sub in ("mit", "qtdb", "nst-em0"):
        assert {"report.md", "report.json", "confusion.png", "alarms.md", "alarms.json"} <= {
            p.name for p in (out / sub).iterdir()
        }
    assert not (out / "vfdb" / "report.json").exists() and (out / "vfdb" / "alarms.json").is_file()
    # the same records through the single-database ecg-eval: the same beat scores, record by record
    single = tmp_path / "single"
    argv = ["--data-dir", str(slices / "mitdb"), "--records", "100,119", "--out", str(single), "--log-level", "error"]
    assert main(argv) == 0
    alone = json.loads((single / "report.json").read_text())
    mit = dbs["mit"]["beats"]
    assert alone["per_record"] == mit["per_record"]
    assert (alone["gross"], alone["average"], alone["confusion"]) == (mit["gross"], mit["average"], mit["confusion"])
    assert "ecg-eval: report written to" in capsys.readouterr().err
