"""ecg-monitor, ecg-eval and ecg-replay: help, bad values from flags and from ECG_MONITOR_* variables."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import wfdb

from engine import BatcherConfig
from monitor.app import MonitorConfig
from monitor.cli import OptionParser, _eval, _monitor
from monitor.ingest import StreamConfig
from monitor.testing import ecg, write_record
from replay import ReplayConfig
from replay import _cli as _replay

Main = Callable[[Sequence[str] | None], int]
SCRIPTS: dict[str, tuple[Main, Callable[[], OptionParser]]] = {
    "ecg-monitor": (_monitor.main, _monitor.build_parser),
    "ecg-eval": (_eval.main, _eval.build_parser),
    "ecg-replay": (_replay.main, _replay.build_parser),
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ECG_MONITOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "100")


def exit_code(main: Main, argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code


@pytest.mark.parametrize("prog", SCRIPTS)
def test_help_lists_every_option_with_its_default_once(prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    main, build = SCRIPTS[prog]
    assert exit_code(main, ["--help"]) == 0
    text = capsys.readouterr().out
    options = [a for a in build()._actions if a.option_strings and a.dest != "help"]
    for action in options:
        assert action.option_strings[0] in text
    assert text.count("(default:") == len(options)
    assert "``" not in text and "default: None" not in text and "(default: none)" not in text


@pytest.mark.parametrize(
    ("prog", "argv", "message"),
    [
        ("ecg-monitor", ["--source", "replay:100", "--latency-budget-ms", "0"], "--latency-budget-ms: must be > 0 ms"),
        ("ecg-monitor", ["--source", "replay:100", "--chunk-ms", "0"], "--chunk-ms: must be > 0 and <= 10000 ms"),
        ("ecg-monitor", ["--source", "replay:100", "--speed", "-3"], "--speed: must be a multiple of real time > 0"),
        ("ecg-monitor", ["--source", "replay:100", "--silence-s", "-1"], "--silence-s: must be > 0 s"),
        ("ecg-monitor", ["--source", "replay:100", "--stream-timeout-s", "0"], "--stream-timeout-s: must be > 0 s"),
        ("ecg-monitor", ["--source", "replay:100", "--lead", "MLII,,0"], "--lead: empty lead in 'MLII,,0'"),
        ("ecg-monitor", ["--source", "replay:100", "--lead", " "], "--lead: empty lead in ' '"),
        ("ecg-monitor", ["--source", "replay:100", "--lead", "II,-1"], "--lead: a channel index must be >= 0"),
        ("ecg-monitor", ["--source", "replay:100", "--lead", "V" * 65], "--lead: a lead name has at most 64"),
        ("ecg-monitor", ["--source", "replay:100", "--metrics", "x:y"], "--metrics: address 'x:y'"),
        ("ecg-monitor", ["--source", "replay:100", "--web", "1:2:3"], "--web: address '1:2:3': write an IPv6"),
        ("ecg-monitor", ["--source", "replay:100", "--backend", "gpu"], "--backend: invalid choice: 'gpu'"),
        ("ecg-eval", ["--data-dir", ".", "--chunk-ms", "-5"], "--chunk-ms: must be > 0 and <= 10000 ms"),
        (
            "ecg-eval",
            ["--data-dir", ".", "--alarms", "--min-episode-s", "x"],
            "--min-episode-s: must be a number >= 0 s",
        ),
        ("ecg-replay", ["100", "--connect", "tcp://127.0.0.1:1", "--stagger-s", "-1"], "--stagger-s: must be >= 0 s"),
        ("ecg-replay", ["100", "--connect", "tcp://127.0.0.1:1", "--speed", "fast"], "--speed: must be a multiple"),
    ],
)
def test_a_bad_flag_value_is_exit_2_naming_the_flag_and_its_unit(
    prog: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(SCRIPTS[prog][0], argv) == 2
    err = capsys.readouterr().err
    assert f"{prog}: error: argument {message}" in err
    assert "Traceback" not in err and "_s " not in err and "_s=" not in err


@pytest.mark.parametrize(
    ("prog", "argv", "variable", "value", "message"),
    [
        (
            "ecg-monitor",
            ["--source", "replay:100"],
            "LEAD",
            "MLII,,V5",
            "--lead (from ECG_MONITOR_LEAD): empty lead in 'MLII,,V5'",
        ),
        (
            "ecg-monitor",
            ["--source", "replay:100"],
            "STREAM_TIMEOUT_S",
            "never",
            "--stream-timeout-s (from ECG_MONITOR_STREAM_TIMEOUT_S): must be a number > 0 s",
        ),
        ("ecg-monitor", ["--source", "replay:100"], "LATENCY_BUDGET_MS", "-1", "(from ECG_MONITOR_LATENCY_BUDGET_MS)"),
        ("ecg-monitor", ["--source", "replay:100"], "BACKEND", "gpu", "ECG_MONITOR_BACKEND: invalid choice 'gpu'"),
        ("ecg-monitor", ["--source", "replay:100"], "BEATS", "often", "ECG_MONITOR_BEATS: expected 1/true"),
        ("ecg-eval", ["--data-dir", "."], "LOG_LEVEL", "loud", "ECG_MONITOR_LOG_LEVEL: invalid choice 'loud'"),
        ("ecg-replay", ["100"], "CHUNK_MS", "fast", "--chunk-ms (from ECG_MONITOR_CHUNK_MS): must be a number"),
        ("ecg-replay", ["100"], "LOOP", "sometimes", "ECG_MONITOR_LOOP: expected 1/true"),
    ],
)
def test_a_bad_environment_value_is_exit_2_naming_the_variable(
    prog: str,
    argv: list[str],
    variable: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ECG_MONITOR_" + variable, value)
    assert exit_code(SCRIPTS[prog][0], argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_monitor_defaults_are_the_settings_defaults() -> None:
    args = _monitor.build_parser().parse_args(["--source", "replay:100"])
    assert args.chunk_ms == ReplayConfig().chunk_s * 1000 and args.speed == ReplayConfig().speed
    assert args.lead == StreamConfig().lead and args.silence_s == MonitorConfig().silence_s
    assert args.stream_timeout_s == MonitorConfig().stream_timeout_s
    assert args.latency_budget_ms == BatcherConfig().latency_budget_s * 1000
    assert args.backend == "auto" and args.view == "auto" and args.log_level == "warning"
    replay_args = _replay.build_parser().parse_args(["100"])
    assert (replay_args.chunk_ms, replay_args.stagger_s) == (ReplayConfig().chunk_s * 1000, ReplayConfig().stagger_s)


def test_environment_values_reach_the_monitor_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECG_MONITOR_BACKEND", "cpu")
    monkeypatch.setenv("ECG_MONITOR_LATENCY_BUDGET_MS", "20")
    monkeypatch.setenv("ECG_MONITOR_SPEED", "max")
    monkeypatch.setenv("ECG_MONITOR_LOOP", "1")
    args = _monitor.build_parser().parse_args(["--source", "replay:100", "--latency-budget-ms", "30"])
    assert (args.backend, args.latency_budget_ms, args.speed, args.loop) == ("cpu", 30.0, None, True)


def test_lead_takes_a_preference_list_of_names_and_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    parse = _monitor.build_parser().parse_args
    args = parse(["--source", "replay:100", "--lead", "MLII,II,V5,0"])
    assert args.lead == ("MLII", "II", "V5", 0)
    assert StreamConfig(lead=args.lead).leads == ("MLII", "II", "V5", 0)
    assert parse(["--source", "replay:100", "--lead", "1"]).lead == (1,)
    assert parse(["--source", "replay:100", "--lead", " ii , 2 "]).lead == ("ii", 2)
    monkeypatch.setenv("ECG_MONITOR_LEAD", "V5,1")
    monkeypatch.setenv("ECG_MONITOR_STREAM_TIMEOUT_S", "30")
    args = _monitor.build_parser().parse_args(["--source", "replay:100"])
    assert (args.lead, args.stream_timeout_s) == (("V5", 1), 30.0)


def test_required_options_missing_are_exit_2_naming_flag_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(_monitor.main, []) == 2
    assert "--source is required (or set ECG_MONITOR_SOURCE)" in capsys.readouterr().err
    assert exit_code(_replay.main, ["100"]) == 2
    assert "--connect ENDPOINT is required (or set ECG_MONITOR_CONNECT)" in capsys.readouterr().err
    assert exit_code(_eval.main, []) == 2
    assert "--data-dir is required (or set ECG_MONITOR_DATA)" in capsys.readouterr().err


def test_eval_without_data_dir_reads_ecg_monitor_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ECG_MONITOR_DATA", str(tmp_path))
    assert _eval.main(["--records", "all"]) == 2
    assert f"--records all: {tmp_path / 'RECORDS'} not found" in capsys.readouterr().err


def test_eval_scores_a_record_found_through_ecg_monitor_data_and_says_where_the_report_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fs = 250.0
    x, peaks = ecg([0.8] * 30, fs, seed=4)
    data = tmp_path / "data"
    write_record(data, "syn", x, fs)
    wfdb.wrann("syn", "atr", peaks, ["N"] * len(peaks), fs=fs, write_dir=str(data))
    monkeypatch.setenv("ECG_MONITOR_DATA", str(data))
    out = tmp_path / "report"
    assert _eval.main(["--records", "syn", "--out", str(out), "--chunk-ms", "1000"]) == 0
    captured = capsys.readouterr()
    assert f"ecg-eval: report written to {out / 'report.md'}" in captured.err
    assert captured.out.startswith("# EC57 report: syn (1 records)")
    report = json.loads((out / "report.json").read_text())
    assert report["records"] == ["syn"] and report["gross"]["qrs_se"] > 90
    assert np.asarray(report["confusion"]).shape == (6, 6)
