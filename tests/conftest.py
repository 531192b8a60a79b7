from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import wfdb
import zmq

from monitor.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ECG_MONITOR_SHARED_DATA", ROOT.parent / "shared" / "data"))
MITDB = SHARED_DATA / "mitdb"


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never touch the network, the user's cache or the user's alarm log."""
    monkeypatch.setenv("ECG_MONITOR_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("ECG_MONITOR_DATA", raising=False)


@pytest.fixture
def mitdb() -> Path:
    if not (MITDB / "RECORDS").is_file():
        pytest.skip(f"MIT-BIH data not found at {MITDB}")
    return MITDB


@pytest.fixture
def clock() -> FakeClock:
    """A clock at 0 s that moves only when the test moves it (``advance``, ``set``)."""
    return FakeClock()


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


def lead_mv(mitdb: Path, record: str, seconds: float | None = None) -> tuple[np.ndarray, float]:
    """First lead of a record in mV (optionally only its first seconds)."""
    header = wfdb.rdheader(str(mitdb / record))
    sampto = None if seconds is None else int(seconds * header.fs)
    rec = wfdb.rdrecord(str(mitdb / record), channels=[0], sampto=sampto)
    return rec.p_signal[:, 0].astype(np.float64), float(rec.fs)


def reference(mitdb: Path, record: str, sampto: int | None = None) -> np.ndarray:
    from monitor import reference_beats

    ann = wfdb.rdann(str(mitdb / record), "atr", sampto=sampto)
    return reference_beats(ann.sample, ann.symbol)
