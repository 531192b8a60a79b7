"""Property-based fuzzing of the wire decoder and the ingest loop (deterministic: derandomized hypothesis)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Beat
from monitor import DataFrame, EndOfStream, FrameError, Ingest, StreamConfig, decode_frame, encode_data
from monitor.protocol import DTYPES
from monitor.testing import FUZZ_KINDS, FuzzDevice, frames_of, fuzz_ecg, fuzz_garbage, random_kind
from tests.conftest import lead_mv

FAST = settings(deadline=None, derandomize=True, max_examples=200, suppress_health_check=list(HealthCheck))
HEADERS = settings(deadline=None, derandomize=True, max_examples=80, suppress_health_check=list(HealthCheck))
SLOW = settings(deadline=None, derandomize=True, max_examples=25, suppress_health_check=list(HealthCheck))
KEYS = ["v", "type", "stream", "seq", "start", "fs", "n", "channels", "units", "gain", "baseline", "dtype", "invalid"]


def check_decode(parts: list[bytes]) -> None:
    """decode_frame returns a consistent frame or raises FrameError; nothing else, no warning."""
    try:
        frame = decode_frame(parts)
    except FrameError:
        return
    if isinstance(frame, EndOfStream):
        assert len(parts) == 1
        return
    assert isinstance(frame, DataFrame)
    assert frame.samples.shape == (frame.n, len(frame.channels)) and frame.fs > 0
    for ch in range(len(frame.channels)):
        assert not np.isinf(frame.physical(ch)).any()
        try:
            mv = frame.millivolts(ch)
        except FrameError as exc:
            assert exc.reason == "units"
        else:
            assert not np.isinf(mv).any()


def valid_parts(n: int, nch: int, dtype: str, seed: int, fs: float = 360.0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(-2000, 2000, size=(n, nch)).astype(dtype)
    return encode_data(
        "dev-1", 3, 100, fs, raw, channels=[f"c{i}" for i in range(nch)], units=["mV"] * nch,
        gain=[200.0] * nch, baseline=[0.0] * nch, invalid=-2000,
    )  # fmt: skip


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**63, 2**62 + 1, 1e308, -1e-308, 5e-324, 65537, 4097]),
    st.text(max_size=80),
    st.sampled_from([*DTYPES, ">i2", "<u2", "int16", "<f2", "", "data", "eos", "mV", "µV"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@FAST
@given(st.lists(st.binary(max_size=200), max_size=4))
def test_decode_random_bytes(parts: list[bytes]) -> None:
    check_decode(parts)


@FAST
@given(
    n=st.integers(1, 40),
    nch=st.integers(1, 4),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
    edits=st.lists(st.tuples(st.booleans(), st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.integers(-20, 20),
)
def test_decode_mutated_valid_frames(
    n: int, nch: int, dtype: str, seed: int, edits: list[tuple[bool, int, int]], cut: int
) -> None:
    header, payload = (bytearray(p) for p in valid_parts(n, nch, dtype, seed))
    for in_header, pos, value in edits:  # flipped bytes, in the header or the samples
        target = header if in_header else payload
        if target:
            target[pos % len(target)] = value
    payload = payload[:cut] if cut < 0 else payload + bytes(cut)  # truncated or extended
    check_decode([bytes(header), bytes(payload)])


@HEADERS
@given(
    n=st.integers(1, 20),
    nch=st.integers(1, 3),
    dtype=st.sampled_from(DTYPES),
    replace=st.dictionaries(st.sampled_from([*KEYS, "sent"]), json_values, max_size=4),
    drop=st.lists(st.sampled_from(KEYS), max_size=3),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=3),
    eos=st.booleans(),
)
def test_decode_headers_with_wrong_types_and_values(
    n: int, nch: int, dtype: str, replace: dict[str, Any], drop: list[str], extra: dict[str, Any], eos: bool
) -> None:
    parts = valid_parts(n, nch, dtype, 0)
    header = {**extra, **json.loads(parts[0]), **replace}
    for k in drop:
        header.pop(k, None)
    text = json.dumps(header).encode()  # NaN and Infinity literals included
    check_decode([text] if eos else [text, parts[1]])


@FAST
@given(depth=st.integers(1, 3000), key=st.sampled_from(KEYS), opener=st.sampled_from(["[", '{"a":']))
def test_decode_deeply_nested_headers(depth: int, key: str, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = '{"v":1,"type":"data","stream":"s","' + key + '":' + opener * depth + "1" + closer * depth + "}"
    check_decode([text.encode(), b"\0" * 8])


@FAST
@given(
    stream=st.text(min_size=0, max_size=70),
    n=st.integers(-5, 70000),
    fs=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 200_000)),
    payload_len=st.integers(0, 64),
)
def test_decode_unicode_ids_and_sample_counts_not_matching_the_buffer(
    stream: str, n: int, fs: float, payload_len: int
) -> None:
    parts = valid_parts(4, 1, "<i2", 0)
    header = {**json.loads(parts[0]), "stream": stream, "n": n, "fs": fs}
    check_decode([json.dumps(header, ensure_ascii=bool(n % 2)).encode(), bytes(payload_len)])


# ------------------------------------------------------------------ ingest


def check_invariants(ingest: Ingest, config: StreamConfig) -> None:
    assert ingest.unaccounted() == 0
    assert "decode_error" not in ingest.rejected
    for proc in ingest.streams.values():
        st = proc.stats
        assert st.error is None, st.error
        assert "internal_error" not in st.rejected
        assert 0 <= st.held < config.restart_frames
        assert proc.ring.capacity == round(config.buffer_s * proc.fs)
        assert proc.queued_samples < proc.max_queued
        assert len(proc.tracker._recent) <= 64 and len(proc.tracker._missed) <= 4096


@SLOW
@given(
    seed=st.integers(0, 2**32 - 1),
    ops=st.lists(st.tuples(st.integers(0, 3), st.integers(0, len(FUZZ_KINDS) - 1), st.booleans()), max_size=60),
)
def test_ingest_never_raises_and_counts_every_message_once(seed: int, ops: list[tuple[int, int, bool]]) -> None:
    rng = np.random.default_rng(seed)
    config = StreamConfig()
    ingest = Ingest(config)
    devices = [FuzzDevice(f"s{i}", rng, fuzz_ecg(20, np.random.default_rng(seed + i))) for i in range(3)]
    for who, kind, step in ops:
        for parts in [fuzz_garbage(rng)] if who == 3 else devices[who].message(FUZZ_KINDS[kind]):
            ingest.on_message(parts)
        if step:
            for beat in ingest.step():
                assert beat.window.size and np.isfinite(beat.window).all()
        check_invariants(ingest, config)
    ingest.flush_all()
    check_invariants(ingest, config)
    assert all(p.stats.held == 0 for p in ingest.streams.values())


def feed_clean(x: np.ndarray, fs: float, between: list[list[list[bytes]]] | None = None) -> tuple[Ingest, list[Beat]]:
    ingest = Ingest()
    out: list[Beat] = []
    msgs = frames_of(x, fs, stream="clean", chunk=360)
    for k, parts in enumerate(msgs):
        out.extend(ingest.feed(parts))
        for other in between[k] if between else []:
            ingest.on_message(other)
        out.extend(ingest.step())
    out.extend(ingest.flush_all())
    return ingest, [b for b in out if b.stream == "clean"]


@pytest.fixture(scope="module")
def record_100() -> tuple[np.ndarray, float, list[Beat]]:
    from tests.conftest import MITDB

    if not (MITDB / "RECORDS").is_file():
        pytest.skip(f"MIT-BIH data not found at {MITDB}")
    x, fs = lead_mv(Path(MITDB), "100", seconds=40)
    return x, fs, feed_clean(x, fs)[1]


@settings(deadline=None, derandomize=True, max_examples=10, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), rate=st.integers(1, 4))
def test_a_clean_stream_among_garbage_streams_gives_the_same_beats(
    record_100: tuple[np.ndarray, float, list[Beat]], seed: int, rate: int
) -> None:
    x, fs, expected = record_100
    rng = np.random.default_rng(seed)
    devices = [FuzzDevice(f"g{i}", rng, fuzz_ecg(20, np.random.default_rng(seed + i))) for i in range(3)]
    between = []
    for _ in range(math.ceil(x.size / 360) + 1):
        msgs = []
        for _ in range(int(rng.integers(0, rate + 1))):
            who = int(rng.integers(0, 4))
            msgs.extend([fuzz_garbage(rng)] if who == 3 else devices[who].message(random_kind(rng)))
        between.append(msgs)
    ingest, got = feed_clean(x, fs, between)
    assert [(b.sample, b.rr_prev, b.rr_next, b.rr_local, b.rr_mean) for b in got] == [
        (b.sample, b.rr_prev, b.rr_next, b.rr_local, b.rr_mean) for b in expected
    ]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.window, b.window)
    clean = ingest.streams["clean"].stats
    assert not clean.rejected and clean.ended and clean.error is None
    check_invariants(ingest, StreamConfig())
