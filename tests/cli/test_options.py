"""The option layer shared by every console script."""

from __future__ import annotations

import argparse

import pytest

from monitor.cli import OptionParser, field_default, non_negative, positive, speed
from replay import ReplayConfig


def parser() -> OptionParser:
    p = OptionParser(prog="prog")
    p.option("--budget-ms", env="TEST_BUDGET_MS", type=positive(float, "ms"), default=50.0, help="budget")
    p.option("--lead", env="TEST_LEAD", type=non_negative(int), default=0, help="lead")
    p.option("--speed", env="TEST_SPEED", type=speed, default=field_default(ReplayConfig, "speed"), help="speed")
    p.option("--view", env="TEST_VIEW", choices=("a", "b"), default="a", help="view")
    p.option("--model", env="TEST_MODEL", help="weights", default_text="the shipped model")
    p.flag("--loop", env="TEST_LOOP", help="loop")
    return p


def test_environment_replaces_the_default_and_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECG_MONITOR_TEST_BUDGET_MS", "20")
    monkeypatch.setenv("ECG_MONITOR_TEST_SPEED", "max")
    monkeypatch.setenv("ECG_MONITOR_TEST_LOOP", "yes")
    monkeypatch.setenv("ECG_MONITOR_TEST_MODEL", "w.pt")
    args = parser().parse_args([])
    assert (args.budget_ms, args.speed, args.loop, args.model, args.lead) == (20.0, None, True, "w.pt", 0)
    assert type(args.model) is str
    assert parser().parse_args(["--budget-ms", "7", "--speed", "2"]).budget_ms == 7.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TEST_BUDGET_MS", "0", "argument --budget-ms (from ECG_MONITOR_TEST_BUDGET_MS): must be > 0 ms, got '0'"),
        ("TEST_LEAD", "x", "argument --lead (from ECG_MONITOR_TEST_LEAD): must be an integer >= 0, got 'x'"),
        ("TEST_SPEED", "-2", "argument --speed (from ECG_MONITOR_TEST_SPEED): must be a multiple of real time > 0"),
        ("TEST_VIEW", "c", "ECG_MONITOR_TEST_VIEW: invalid choice 'c' for --view"),
        ("TEST_LOOP", "maybe", "ECG_MONITOR_TEST_LOOP: expected 1/true/yes/on or 0/false/no/off, got 'maybe'"),
    ],
)
def test_a_bad_environment_value_is_exit_2_naming_variable_and_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("ECG_MONITOR_" + variable, value)
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args([])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_number_types_name_their_unit_and_bound() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be > 0 and <= 10000 ms, got '20000'"):
        positive(float, "ms", maximum=10000)("20000")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be >= 0 s, got 'nan'"):
        non_negative(float, "s")("nan")
    assert positive(int)("3") == 3 and non_negative(float)("0") == 0.0


def test_help_shows_each_default_once_in_words_or_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("ECG_MONITOR_TEST_BUDGET_MS", "20")
    text = parser().format_help()
    assert "budget (default: 50; env ECG_MONITOR_TEST_BUDGET_MS)" in text  # the declared default, not the variable's
    assert "speed (default: 1; env ECG_MONITOR_TEST_SPEED)" in text
    assert "weights (default: the shipped model; env ECG_MONITOR_TEST_MODEL)" in text
    assert "loop (default: off; env ECG_MONITOR_TEST_LOOP)" in text
    assert text.count("(default: ") == 6
