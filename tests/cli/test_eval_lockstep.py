"""Scoring never depends on machine load: every ecg-eval pass runs the monitor in lockstep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import monitor.cli._eval as ecg_eval


class _Stop(Exception):
    pass


@pytest.mark.parametrize("extra", [[], ["--alarms"]])
def test_every_scoring_pass_runs_in_lockstep(
    mitdb: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]
) -> None:
    seen: list[dict[str, Any]] = []

    def fake_monitor(*args: Any, **kwargs: Any) -> None:
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(ecg_eval, "Monitor", fake_monitor)
    with pytest.raises(_Stop):
        ecg_eval.main(["--data-dir", str(mitdb), "--records", "100", "--out", str(tmp_path), *extra])
    assert seen and seen[0].get("lockstep") is True  # labels are never shed when the machine is busy
