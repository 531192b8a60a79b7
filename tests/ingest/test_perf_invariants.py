"""The ingest fast paths give exactly what the general paths give."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from monitor.errors import FrameError
from monitor.ingest import MAX_ABS_MV, RingBuffer, StreamConfig, StreamProcessor
from monitor.protocol._wire import DataFrame, _checked, decode_frame, encode_data

_VALUES = [None, True, False, 0, 1, -1, 2**53 + 1, 2**70, 1.5, "x", "<i2", "<f8", [], [1], ["a"], [200.0], [0]]
_VALUES += [[True], [1e-320], {}, 360, 360.0, 1e308, "bed-2", "a\n", 36, 37, ["a", "b"], [1.0, 2.0]]


def _general(parts: list[bytes]) -> DataFrame | str:
    """The full field-by-field checks alone (what decode_frame did before its fast path)."""
    try:
        header = json.loads(parts[0])
    except ValueError:
        return "json"
    try:
        frame = _checked(header, parts)
    except FrameError as exc:
        return f"{exc.reason}: {exc}"
    assert isinstance(frame, DataFrame)
    return frame


def _decoded(parts: list[bytes]) -> DataFrame | str:
    try:
        frame = decode_frame(parts)
    except FrameError as exc:
        return "json" if exc.reason == "json" else f"{exc.reason}: {exc}"
    assert isinstance(frame, DataFrame)
    return frame


def _same(a: DataFrame | str, b: DataFrame | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    fields = ("stream", "seq", "start", "fs", "channels", "units", "gain", "baseline", "dtype", "invalid", "sent")
    same = all(getattr(a, f) == getattr(b, f) and type(getattr(a, f)) is type(getattr(b, f)) for f in fields)
    return same and a.samples.dtype == b.samples.dtype and np.array_equal(a.samples, b.samples)


def test_fast_decode_matches_the_full_checks() -> None:
    rng = random.Random(7)
    parts0 = encode_data(
        "bed-1", 3, 100, 360.0, np.arange(36, dtype="<i2"), channels=["I"], units=["mV"], gain=[200.0], baseline=[0.0]
    )
    base = json.loads(parts0[0])
    for _ in range(3000):
        header = dict(base)
        for _ in range(rng.randint(0, 3)):
            key = rng.choice([*base, "invalid", "sent"])
            if rng.random() < 0.15:
                header.pop(key, None)
            else:
                header[key] = rng.choice(_VALUES)
        payload = parts0[1] if rng.random() < 0.85 else parts0[1][:-2]
        parts = [json.dumps(header, separators=(",", ":")).encode(), payload]
        assert _same(_decoded(parts), _general(parts)), parts[0]


@pytest.mark.parametrize("dtype", ["<i2", "<i4", "<f4", "<f8"])
@pytest.mark.parametrize("gain", [200.0, -200.0, 1.0, 0.001, 1e-300])
@pytest.mark.parametrize("baseline", [0.0, 1024.0, -5.5, 1e300])
@pytest.mark.parametrize("units", ["mV", "uV", "V"])
@pytest.mark.parametrize("invalid", [None, -2048, -32768])
def test_lead_conversion_matches_millivolts(
    dtype: str, gain: float, baseline: float, units: str, invalid: int | None
) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if dtype.startswith("<i") else None
    raw = rng.integers(-3000, 3000, size=(40, 2)).astype(dtype)
    if info is not None:
        raw[0, 0], raw[1, 0] = info.min, info.max
    raw[5, 0] = -2048
    frame = decode_frame(
        encode_data("s", 0, 0, 360.0, raw, channels=["a", "b"], units=[units] * 2, gain=[gain] * 2,
                    baseline=[baseline] * 2, invalid=invalid)
    )  # fmt: skip
    assert isinstance(frame, DataFrame)
    proc = StreamProcessor(frame, StreamConfig())
    x, clean = proc.converter(frame)
    expected = frame.millivolts(0)
    np.testing.assert_array_equal(x, expected)
    if clean:
        assert np.isfinite(x).all() and (np.abs(x) <= MAX_ABS_MV).all()


def test_ring_one_dimensional_append_matches_two_dimensional() -> None:
    rng = np.random.default_rng(1)
    a, b = RingBuffer(100), RingBuffer(100)
    for _ in range(200):
        x = rng.standard_normal(int(rng.integers(1, 140)))
        a.append(x)
        b.append(x.astype(np.float32)[:, None])
        assert a.end == b.end
        np.testing.assert_array_equal(a.read(a.start, a.end), b.read(b.start, b.end))
