from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from monitor import ConfigError, RecordError, RecordNotFoundError
from monitor.testing import write_record
from replay import check_data_dir, database_records, load_record, read_header, resolve_record


def test_resolve_by_name_in_data_dir_and_env(mitdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = resolve_record("100", mitdb)
    assert ref.name == "100" and ref.path == mitdb / "100" and ref.has_annotations()
    monkeypatch.setenv("ECG_MONITOR_DATA", str(mitdb))
    assert resolve_record("101").path == mitdb / "101"


def test_resolve_by_path_with_or_without_extension(mitdb: Path) -> None:
    assert resolve_record(str(mitdb / "102")).name == "102"
    assert resolve_record(str(mitdb / "102.hea")).path == mitdb / "102"


def test_missing_record_names_every_place_searched(tmp_path: Path) -> None:
    with pytest.raises(RecordNotFoundError) as info:
        resolve_record("999", tmp_path)
    text = str(info.value)
    assert str(tmp_path / "999.hea") in text and "ecg-monitor" in text and "--data-dir" in text


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(RecordNotFoundError, match="no header"):
        resolve_record(str(tmp_path / "nope"))


def test_cache_is_searched_after_the_data_dir(mitdb: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "ecg-monitor" / "mitdb"
    cache.mkdir(parents=True)
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mitdb / f"100.{ext}", cache / f"100.{ext}")
    assert resolve_record("100").path == cache / "100"


def test_corrupt_header_gives_a_record_error(tmp_path: Path) -> None:
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    ref = resolve_record(str(tmp_path / "bad"))
    with pytest.raises(RecordError, match="cannot read record"):
        load_record(ref)


def test_load_record_returns_digital_samples_with_gain(mitdb: Path) -> None:
    rec = load_record(resolve_record("100", mitdb))
    assert rec.fs == 360.0 and rec.channels == ("MLII", "V5") and rec.samples.shape == (650000, 2)
    assert rec.samples.dtype == np.int16 and rec.gain == (200.0, 200.0) and rec.invalid == -2048


def test_database_listing(mitdb: Path) -> None:
    refs = database_records(mitdb)
    assert len(refs) == 48 and refs[0].name == "100"
    with pytest.raises(RecordNotFoundError, match="RECORDS"):
        database_records(mitdb.parent / "definitely-missing")


def test_read_header_checks_rate_and_signal_lines(tmp_path: Path) -> None:
    write_record(tmp_path, "syn", np.zeros(500), 360.0)
    ref = resolve_record(str(tmp_path / "syn"))
    header = read_header(ref)
    assert (header.fs, header.channels) == (360.0, 1)
    good = (tmp_path / "syn.hea").read_text()
    for record_line, problem in [
        ("syn 1 abc 500", "gives the sampling frequency as 'abc', not a number > 0 Hz"),
        ("syn 1 -360 500", "gives the sampling frequency as '-360'"),
        ("syn 3 360 500", "declares 3 signal(s) but has 1 signal line(s)"),
    ]:
        (tmp_path / "syn.hea").write_text(record_line + "\n" + good.split("\n", 1)[1])
        with pytest.raises(RecordError, match="cannot read record") as info:
            load_record(ref)
        assert str(tmp_path / "syn.hea") in str(info.value) and problem in str(info.value)


def test_a_header_without_a_rate_gets_wfdbs_default_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_record(tmp_path, "syn", np.zeros(500), 250.0)
    lines = (tmp_path / "syn.hea").read_text().split("\n", 1)
    (tmp_path / "syn.hea").write_text("syn 1\n" + lines[1])
    with caplog.at_level("WARNING", logger="replay"):
        header = read_header(resolve_record(str(tmp_path / "syn")))
    assert header.fs == 250.0
    assert "gives no sampling frequency: WFDB's default 250 Hz is used" in caplog.text


def test_check_data_dir_names_a_file_or_a_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_data_dir(tmp_path)
    check_data_dir(None)
    with pytest.raises(ConfigError, match="does not exist"):
        check_data_dir(tmp_path / "missing")
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("ECG_MONITOR_DATA", str(tmp_path / "afile"))
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_data_dir(None)
