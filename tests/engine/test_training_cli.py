"""ecg-train never overwrites the shipped weights by default; its options are checked with their flag named."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import DEFAULT_WEIGHTS
from engine.training import DEFAULT_OUT, check_output
from engine.training._pretrain import build_parser as pretrain_parser
from engine.training._train import build_parser, main


def test_the_default_output_is_in_the_current_directory() -> None:
    args = build_parser().parse_args(["--data-dir", "x"])
    assert args.out == DEFAULT_OUT and not DEFAULT_OUT.is_absolute() and DEFAULT_OUT.parent == Path(".")
    assert args.force is False and check_output(args.out, False) is None


def test_writing_into_the_shipped_weights_folder_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = DEFAULT_WEIGHTS.read_bytes() if DEFAULT_WEIGHTS.is_file() else None
    assert "--force" in (check_output(DEFAULT_WEIGHTS, False) or "")
    assert check_output(DEFAULT_WEIGHTS.parent / "other.pt", False) is not None
    assert check_output(DEFAULT_WEIGHTS, True) is None
    assert main(["--data-dir", str(tmp_path), "--out", str(DEFAULT_WEIGHTS)]) == 2
    assert "shipped weights folder" in capsys.readouterr().err
    assert (DEFAULT_WEIGHTS.read_bytes() if DEFAULT_WEIGHTS.is_file() else None) == before


@pytest.mark.parametrize(
    ("argv", "flag"), [(["--epochs", "0"], "--epochs"), (["--lr", "-1"], "--lr"), (["--threads", "x"], "--threads")]
)
def test_bad_numbers_name_their_flag(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--data-dir", "x", *argv])
    assert exit_info.value.code == 2 and flag in capsys.readouterr().err


def test_pretrain_options() -> None:
    args = pretrain_parser().parse_args(["--records", "3", "--seconds", "2.5"])
    assert (args.records, args.seconds, args.epochs, args.arch) == (3, 2.5, 6, "beatnet")
    with pytest.raises(SystemExit):
        pretrain_parser().parse_args(["--seconds", "0"])


def test_robust_training_is_the_default_and_can_be_turned_off() -> None:
    args = build_parser().parse_args(["--data-dir", "x"])
    assert args.no_robust is False and args.keep_n == 0.05 and args.select_dir is None
    args = build_parser().parse_args(["--data-dir", "x", "--no-robust", "--select-dir", "qt", "--keep-n", "0.5"])
    assert args.no_robust is True and args.select_dir == Path("qt") and args.keep_n == 0.5


def test_a_keep_n_above_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--keep-n", "2"]) == 2
    assert "--keep-n must be a fraction" in capsys.readouterr().err
