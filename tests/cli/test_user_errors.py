"""Every bad input a user can give ecg-monitor and ecg-eval: a clear message naming it, exit 2, no traceback."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import wfdb

from monitor.app import MonitorConfig
from monitor.cli import _eval, _monitor
from monitor.errors import ConfigError
from monitor.testing import ecg, write_record

FS = 250.0
QUIET = ["--model", "none", "--view", "off", "--alarm-log", "off", "--speed", "max"]


@pytest.fixture(autouse=True)
def stops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[], object]]]:
    for name in list(os.environ):
        if name.startswith("ECG_MONITOR_") and name != "ECG_MONITOR_OFFLINE":
            monkeypatch.delenv(name)
    stops: list[Callable[[], object]] = []
    monkeypatch.setattr(_monitor, "stop_on_signals", stops.append)  # leave the test process's handlers alone
    yield stops


@pytest.fixture
def record(tmp_path: Path) -> Path:
    """A 10 s one-lead record with reference beats: ``tmp/data/syn``."""
    x, peaks = ecg([0.8] * 12, FS, seed=3)
    path = write_record(tmp_path / "data", "syn", x, FS)
    wfdb.wrann("syn", "atr", peaks, ["N"] * len(peaks), fs=FS, write_dir=str(path.parent))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def fails(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main``; it must exit 2 without a traceback; returns its stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ sockets


def test_source_port_in_use_is_exit_2_and_never_says_listening(
    taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"tcp://127.0.0.1:{taken_port}"
    err = fails(_monitor.main, ["--source", endpoint, *QUIET], capsys)
    assert f"ecg-monitor: error: --source {endpoint}: address in use" in err
    assert "listening on" not in err


def test_alerts_port_in_use_is_exit_2_and_never_says_published(
    taken_port: int, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"tcp://127.0.0.1:{taken_port}"
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--alerts", endpoint, *QUIET], capsys)
    assert f"ecg-monitor: error: --alerts {endpoint}: address in use" in err
    assert "published on" not in err


def test_metrics_port_in_use_is_exit_2(taken_port: int, record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--metrics", f"127.0.0.1:{taken_port}", *QUIET], capsys)
    assert f"ecg-monitor: error: --metrics 127.0.0.1:{taken_port}:" in err and "in use" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "tcp://127.0.0.1:99999"], "port '99999' is not '*' or a number 0..65535"),
        (["--source", "tcp://5555"], "a tcp endpoint needs HOST:PORT"),
        (
            ["--source", "ipc:///definitely/missing/folder/sock"],
            "--source ipc:///definitely/missing/folder/sock: cannot",
        ),
        (["--source", "replay:RECORD", "--alerts", "nonsense"], "--alerts nonsense: endpoint 'nonsense' is not"),
        (["--source", "replay:RECORD", "--alerts", "tcp://no-such-host.invalid:5570"], "--alerts tcp://no-such-host"),
        (["--source", "replay:RECORD", "--engine", "nonsense"], "--engine nonsense: Invalid argument"),
    ],
)
def test_a_bad_endpoint_is_exit_2_naming_its_flag(
    argv: list[str], message: str, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("RECORD", str(record)) for a in argv]
    err = fails(_monitor.main, [*argv, *QUIET], capsys)
    assert message in err
    assert "published on" not in err and "listening on" not in err


def test_listening_is_said_once_the_socket_is_bound(
    stops: list[Callable[[], object]], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()

    def stop_once_bound() -> None:
        for _ in range(300):
            if stops:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                except OSError:
                    pass
                else:
                    stops[0]()
                    return
            threading.Event().wait(0.05)

    helper = threading.Thread(target=stop_once_bound, daemon=True)
    helper.start()
    assert _monitor.main(["--source", f"tcp://127.0.0.1:{port}", *QUIET]) == 0
    helper.join(timeout=5)
    err = capsys.readouterr().err
    assert err.count(f"ecg-monitor: listening on tcp://127.0.0.1:{port}") == 1


# ------------------------------------------------------------------ files and folders


def test_annotations_on_a_file_or_where_no_folder_can_be_made_is_exit_2(
    record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--annotations", str(afile), *QUIET], capsys)
    assert f"ecg-monitor: error: --annotations {afile}: is a file, not a folder" in err
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--annotations", str(afile / "sub"), *QUIET], capsys)
    assert f"ecg-monitor: error: --annotations {afile / 'sub'}: cannot write there" in err
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--annotations", "", *QUIET], capsys)
    assert "--annotations: the folder name is empty" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_annotations_in_a_read_only_folder_is_exit_2(
    record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--annotations", str(locked), *QUIET], capsys)
    assert f"--annotations {locked}: cannot write there" in err


HEADERS = {
    "no signal line": ("syn 1 250 2500\n", "declares 1 signal(s) but has 0 signal line(s)"),
    "too few signal lines": ("syn 2 250 2500\nsyn.dat 16 200(0)/mV 16 0 0 0 0 MLII\n", "declares 2 signal(s) but"),
    "no signals": ("syn 0 250 2500\n", "declares no signals"),
    "text rate": ("syn 1 fast 2500\nsyn.dat 16 200(0)/mV 16 0 0 0 0 MLII\n", "frequency as 'fast', not a number > 0"),
    "zero rate": ("syn 1 0 2500\nsyn.dat 16 200(0)/mV 16 0 0 0 0 MLII\n", "frequency as '0', not a number > 0"),
    "negative rate": ("syn 1 -360 2500\nsyn.dat 16 200(0)/mV 16 0 0 0 0 MLII\n", "as '-360', not a number > 0"),
    "infinite rate": ("syn 1 1e999 2500\nsyn.dat 16 200(0)/mV 16 0 0 0 0 MLII\n", "as '1e999', not a number > 0"),
}


@pytest.mark.parametrize("case", HEADERS)
def test_a_bad_header_is_exit_2_before_the_run_naming_file_and_problem(
    case: str, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, problem = HEADERS[case]
    header = record.with_name("syn.hea")
    header.write_text(text)
    err = fails(_monitor.main, ["--source", f"replay:{record}", *QUIET], capsys)
    assert f"ecg-monitor: error: cannot read record {record}: " in err and str(header) in err and problem in err
    assert "replay failed" not in err


def test_a_header_that_is_not_utf8_is_read(record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = record.with_name("syn.hea")
    header.write_bytes(header.read_bytes() + b"# recorded by Jos\xe9\n")
    assert _monitor.main(["--source", f"replay:{record}", *QUIET]) == 0
    assert "syn: " in capsys.readouterr().out


def test_lead_beyond_the_records_channels_is_exit_2_before_the_run(
    record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--lead", "1", *QUIET], capsys)
    assert f"ecg-monitor: error: --lead 1: record syn ({record}) has 1 channel(s), so --lead must be 0..0" in err
    err = fails(_monitor.main, ["--source", f"replay:{record}", "--lead", "2,1", *QUIET], capsys)
    assert f"--lead 2,1: record syn ({record}) has 1 channel(s), so --lead must be 0..0 or name a lead" in err


@pytest.mark.parametrize("lead", ["V5,II", "mlii", "V5,3,0", "0"])
def test_a_lead_list_naming_a_lead_or_an_existing_channel_runs(
    lead: str, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record without any listed name is monitored on channel 0: a name list is never an error."""
    assert _monitor.main(["--source", f"replay:{record}", "--lead", lead, *QUIET]) == 0
    assert "vs reference: TP 13 FP 0 FN 0" in capsys.readouterr().out


def test_a_stream_timeout_below_the_silence_is_exit_2_naming_both_flags(
    record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--source", f"replay:{record}", "--silence-s", "10", "--stream-timeout-s", "5", *QUIET]
    err = fails(_monitor.main, argv, capsys)
    assert "ecg-monitor: error: --stream-timeout-s (5 s) must be at least --silence-s (10 s)" in err
    assert "_s " not in err


def test_lead_and_stream_timeout_reach_the_monitor(
    record: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[MonitorConfig] = []

    def monitor(source: object, config: MonitorConfig, **kw: object) -> None:
        seen.append(config)
        raise ConfigError("stop here")

    monkeypatch.setattr(_monitor, "Monitor", monitor)
    monkeypatch.setenv("ECG_MONITOR_STREAM_TIMEOUT_S", "30")
    argv = ["--source", f"replay:{record}", "--lead", "MLII,II,V5,0", *QUIET]
    assert "stop here" in fails(_monitor.main, argv, capsys)
    assert seen[0].stream.lead == ("MLII", "II", "V5", 0) and seen[0].stream_timeout_s == 30.0
    assert seen[0].silence_s == MonitorConfig().silence_s


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "replay:EMPTY"], "the folder EMPTY has no RECORDS file"),
        (["--source", "replay:syn", "--data-dir", "AFILE"], "--data-dir AFILE is a file, not a folder"),
        (["--source", "replay:syn", "--data-dir", "MISSING"], "--data-dir MISSING does not exist"),
        (["--source", "replay:sin", "--data-dir", "DATA"], "record 'sin' not found. Searched: DATA/sin.hea"),
        (["--source", "replay:AFILE"], "record 'AFILE': no header file AFILE.hea"),
        (["--source", "replay:syn,,syn", "--data-dir", "DATA"], "empty record name in the list"),
    ],
)
def test_a_careless_source_is_exit_2(
    argv: list[str], message: str, record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("")
    places = {
        "EMPTY": tmp_path / "empty",
        "AFILE": tmp_path / "afile",
        "MISSING": tmp_path / "missing",
        "DATA": record.parent,
    }

    def fill(text: str) -> str:
        for key, value in places.items():
            text = text.replace(key, str(value))
        return text

    err = fails(_monitor.main, [*map(fill, argv), *QUIET], capsys)
    assert fill(message) in err


# ------------------------------------------------------------------ end-of-run summary


def test_summary_of_a_record_without_reference_beats_says_so(record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wfdb.wrann("syn", "atr", np.array([10]), ["+"], aux_note=["(N"], fs=FS, write_dir=str(record.parent))
    assert _monitor.main(["--source", f"replay:{record}", *QUIET]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("syn: ") and "vs reference: no reference beats (" in lines[0]
    assert lines[1].startswith("total: ") and "no reference beats" in lines[1]
    assert "nan" not in out and "+P 0.00" not in out


def test_summary_with_reference_beats_keeps_its_figures(record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _monitor.main(["--source", f"replay:{record}", *QUIET]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "vs reference: TP 13 FP 0 FN 0, Se 100.00 +P 100.00" in lines[0]
    assert lines[1].endswith("; TP 13 FP 0 FN 0, Se 100.00 +P 100.00 F1 100.00")


# ------------------------------------------------------------------ ecg-eval


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--records", "syn,sin"], "record 'sin' not found"),
        (["--records", ","], "--records ',' names no records"),
        (["--records", "noref"], "no reference annotations DATA/noref.atr: ecg-eval scores the monitor against them"),
        (["--records", "syn", "--out", "AFILE"], "--out AFILE: is a file, not a folder"),
        (["--records", "syn", "--annotations", "AFILE"], "--annotations AFILE: is a file, not a folder"),
        (["--records", "syn", "--data-dir", "AFILE"], "--data-dir AFILE is a file, not a folder"),
        (["--records", "all", "--data-dir", "MISSING"], "--data-dir MISSING does not exist"),
    ],
)
def test_eval_careless_input_is_exit_2_before_the_run(
    argv: list[str], message: str, record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_record(record.parent, "noref", ecg([0.8] * 4, FS, seed=1)[0], FS)
    (tmp_path / "afile").write_text("")
    places = {"AFILE": tmp_path / "afile", "MISSING": tmp_path / "missing", "DATA": record.parent}

    def fill(text: str) -> str:
        for key, value in places.items():
            text = text.replace(key, str(value))
        return text

    err = fails(_eval.main, ["--data-dir", str(record.parent), *map(fill, argv)], capsys)
    assert f"ecg-eval: error: {fill(message)}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "  "], "--source is required"),
        (["--source", "replay:RECORD", "--model", ""], "--model is empty"),
        (["--source", "replay:RECORD", "--key-name", "bedside"], "--key-name needs --keys DIR"),
        (["--source", "replay:RECORD", "--wave"], "--wave needs --alerts ENDPOINT"),
    ],
)
def test_empty_or_orphan_flags_are_exit_2(
    argv: list[str], message: str, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails(_monitor.main, [a.replace("RECORD", str(record)) for a in argv], capsys)
    assert f"ecg-monitor: error: {message}" in err


def test_eval_with_an_empty_model_is_exit_2(record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(_eval.main, ["--data-dir", str(record.parent), "--records", "syn", "--model", " "], capsys)
    assert "ecg-eval: error: --model is empty" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--db", "mitdb=MISSING:ds2"], "--db mitdb: the folder MISSING does not exist"),
        (["--db", "x=AFILE"], "--db x: the folder AFILE is a file, not a folder"),
        (["--db", "d=DATA:syn,sin"], "--db d: record 'sin' not found"),
        (["--db", "d=DATA:noref"], "--db d: no reference annotations DATA/noref.atr"),
        (["--db", "DATA:syn", "--db", "DATA:syn"], "a second database named 'data'; give it NAME=..."),
        (["--db", "n=nst:em:0:syn", "--nst-clean", "DATA"], "--db n: a noise mix needs --nst-noise"),
        (["--db", "n=nst:xx:0:syn", "--nst-clean", "DATA", "--nst-noise", "DATA"], "no noise record 'xx' in DATA"),
        (["--db", "n=nst:em:0", "--nst-clean", "MISSING", "--nst-noise", "DATA"], "--nst-clean MISSING does not exist"),
        (["--db", "nst:em:loud"], "SNR 'loud' is not a whole number of dB"),
        (["--db", "DATA:syn", "--alarms"], "--alarms: the cross-database report (--db) scores beats and alarms"),
        (["--db", "DATA:syn", "--records", "syn"], "--records: with --db, name the records in each database"),
        (["--db", "DATA:syn", "--out", "AFILE"], "--out AFILE: is a file, not a folder"),
    ],
)
def test_eval_over_several_databases_checks_every_one_before_the_run(
    argv: list[str], message: str, record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_record(record.parent, "noref", ecg([0.8] * 4, FS, seed=1)[0], FS)
    (tmp_path / "afile").write_text("")
    places = {"AFILE": tmp_path / "afile", "MISSING": tmp_path / "missing", "DATA": record.parent}

    def fill(text: str) -> str:
        for key, value in places.items():
            text = text.replace(key, str(value))
        return text

    err = fails(_eval.main, [fill(a) for a in argv], capsys)
    assert "ecg-eval: error: " in err and fill(message) in err
