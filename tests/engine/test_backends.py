from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import wfdb

from engine import DEFAULT_WEIGHTS, CnnClassifier
from engine._backends import BACKENDS, EXTRA_BACKENDS, discover
from monitor import beats_of_signal

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped weights")


def test_cpu_is_always_available_and_every_backend_is_reported() -> None:
    found = discover()
    assert set(found) == {*BACKENDS, *EXTRA_BACKENDS} and found["cpu"] == "available"


def test_an_absent_backend_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    if discover()["cuda"] == "available":
        pytest.skip("CUDA is present here")
    with caplog.at_level(logging.WARNING):
        clf = CnnClassifier.load(DEFAULT_WEIGHTS, backend="tensorrt")
    assert clf.backend.name == "cpu" and "not available" in caplog.text
    with pytest.raises(ValueError, match="--backend"):
        CnnClassifier.load(DEFAULT_WEIGHTS, backend="tpu")


@pytest.mark.parametrize(
    "name", [*(b for b in BACKENDS if b != "cpu"), pytest.param("compiled-cpu", marks=pytest.mark.slow)]
)
def test_every_backend_present_gives_the_cpu_labels(mitdb: Path, name: str) -> None:
    if discover()[name] != "available":
        if name == "compiled-cpu" and os.environ.get("ECG_MONITOR_REQUIRE_COMPILED_CPU"):
            pytest.fail(f"compiled-cpu must build here: {discover()[name]}")
        pytest.skip(f"{name}: {discover()[name]}")
    x = wfdb.rdrecord(str(mitdb / "208"), channels=[0], sampto=360 * 300).p_signal[:, 0]
    beats = beats_of_signal(x, 360.0)
    cpu = CnnClassifier.load(DEFAULT_WEIGHTS, backend="cpu").classify(beats)
    other = CnnClassifier.load(DEFAULT_WEIGHTS, backend=name).classify(beats)
    agree = np.mean(np.array(cpu) == np.array(other))
    # FP16 (TensorRT) may move a borderline beat; float32 backends must agree exactly
    assert agree >= (0.995 if name == "tensorrt" else 1.0), agree


def test_auto_never_picks_the_compiled_cpu_backend() -> None:
    assert "compiled-cpu" not in BACKENDS  # compiling takes tens of seconds at start: only by name
    assert CnnClassifier.load(DEFAULT_WEIGHTS, backend="auto").backend.name != "compiled-cpu"
