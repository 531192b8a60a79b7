from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
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
    built = CnnClassifier.load(DEFAULT_WEIGHTS, backend=name)
    assert built.backend.name == name  # not a fallback
    other = built.classify(beats)
    agree = np.mean(np.array(cpu) == np.array(other))
    # FP16 (TensorRT) may move a borderline beat; float32 backends must agree exactly
    assert agree >= (0.995 if name == "tensorrt" else 1.0), agree


def test_auto_never_picks_the_compiled_cpu_backend() -> None:
    assert "compiled-cpu" not in BACKENDS  # compiling takes tens of seconds at start: only by name
    assert CnnClassifier.load(DEFAULT_WEIGHTS, backend="auto").backend.name != "compiled-cpu"


def _fake_backends(monkeypatch: pytest.MonkeyPatch, broken: set[str]) -> list[str]:
    """Every backend reported present; building one appends its name, and those in ``broken`` then raise."""
    import engine._backends as backends

    built: list[str] = []

    def fake(name: str) -> type:
        class Fake(backends.Backend):
            def __init__(self, *args: object) -> None:
                built.append(name)
                if name in broken:
                    raise RuntimeError(f"{name} cannot start")
                self.name = name

        return Fake

    monkeypatch.setattr(backends, "discover", lambda: dict.fromkeys((*BACKENDS, *EXTRA_BACKENDS), "available"))
    monkeypatch.setattr(backends, "_CLASSES", {n: fake(n) for n in (*BACKENDS, *EXTRA_BACKENDS)})
    return built


@pytest.mark.parametrize(
    ("asked", "broken", "tried"),
    [
        ("auto", set(), ["tensorrt"]),
        ("auto", {"tensorrt"}, ["tensorrt", "cuda"]),  # never compiled: it was no faster than cuda and stalled
        ("auto", {"tensorrt", "cuda"}, ["tensorrt", "cuda", "cpu"]),
        ("compiled", set(), ["compiled"]),
        ("compiled", {"compiled"}, ["compiled", "cuda"]),
        ("tensorrt", {"tensorrt"}, ["tensorrt", "cuda"]),
        ("cuda", {"cuda"}, ["cuda", "cpu"]),
        ("compiled-cpu", {"compiled-cpu"}, ["compiled-cpu", "cpu"]),
    ],
)
def test_the_order_backends_are_tried_in(
    monkeypatch: pytest.MonkeyPatch, asked: str, broken: set[str], tried: list[str]
) -> None:
    from engine._backends import make_backend
    from engine._representation import RepresentationConfig

    built = _fake_backends(monkeypatch, broken)
    backend = make_backend(asked, torch.nn.Linear(1, 1), RepresentationConfig())
    assert built == tried and backend.name == tried[-1]
