from __future__ import annotations

import json

import numpy as np
import pytest

from monitor import DataFrame, EndOfStream, FrameError, decode_frame, encode_data, encode_eos

KW = dict(channels=["MLII", "V5"], units=["mV", "mV"], gain=[200.0, 200.0], baseline=[1024.0, 1024.0])


def data_parts(**overrides: object) -> list[bytes]:
    samples = np.array([[1024, 1000], [1224, 1100], [-2048, 1024]], dtype="<i2")
    parts = encode_data("100", 5, 360, 360.0, samples, invalid=-2048, **KW)  # type: ignore[arg-type]
    header = json.loads(parts[0])
    header.update(overrides)
    return [json.dumps(header).encode(), parts[1]]


def test_round_trip_and_physical_units() -> None:
    frame = decode_frame(data_parts())
    assert isinstance(frame, DataFrame)
    assert (frame.stream, frame.seq, frame.start, frame.fs, frame.n) == ("100", 5, 360, 360.0, 3)
    assert frame.channels == ("MLII", "V5")
    mv = frame.millivolts(0)
    assert mv[0] == 0.0 and mv[1] == 1.0
    assert np.isnan(mv[2])  # the invalid sample value becomes NaN
    assert frame.physical(1)[0] == pytest.approx((1000 - 1024) / 200)


def test_units_are_converted_to_millivolts() -> None:
    parts = encode_data(
        "dev-1",
        0,
        0,
        500.0,
        np.array([[1000.0]], dtype="<f4"),
        channels=["II"],
        units=["uV"],
        gain=[1.0],
        baseline=[0.0],
    )
    frame = decode_frame(parts)
    assert isinstance(frame, DataFrame)
    assert frame.millivolts(0)[0] == pytest.approx(1.0)


def test_eos_round_trip() -> None:
    frame = decode_frame(encode_eos("100", 9, 650000))
    assert frame == EndOfStream("100", 9, 650000)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"v": 3}, "version"),
        ({"v": 0}, "version"),
        ({"v": 2}, "boot"),
        ({"v": 2, "boot": "a b"}, "boot"),
        ({"v": 2, "boot": ""}, "boot"),
        ({"v": 2, "boot": "x" * 65}, "boot"),
        ({"v": 2, "boot": -1}, "boot"),
        ({"v": 2, "boot": 2**64}, "boot"),
        ({"v": 2, "boot": True}, "boot"),
        ({"v": 2, "boot": 1.5}, "boot"),
        ({"stream": "../etc/passwd"}, "stream"),
        ({"stream": ""}, "stream"),
        ({"seq": -1}, "range"),
        ({"seq": 1.5}, "header"),
        ({"fs": 0}, "range"),
        ({"fs": "360"}, "header"),
        ({"fs": float("inf")}, "header"),
        ({"n": 4}, "size"),
        ({"n": 0}, "range"),
        ({"dtype": ">i2"}, "dtype"),
        ({"gain": [200.0]}, "header"),
        ({"gain": [0.0, 200.0]}, "range"),
        ({"channels": []}, "header"),
        ({"type": "hello"}, "type"),
        ({"invalid": "x"}, "header"),
    ],
)
def test_malformed_headers_are_rejected_with_a_reason(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(data_parts(**overrides))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([], "parts"),
        ([b"{}", b"", b""], "parts"),
        ([b"\xff\xfe"], "json"),
        ([b"[1, 2]"], "header"),
        ([b"x" * 5000], "header_size"),
        ([b'{"v": 1, "type": "data", "stream": "a", "seq": 0, "start": 0}'], "parts"),
    ],
)
def test_malformed_messages_are_rejected(parts: list[bytes], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(parts)
    assert info.value.reason == reason


def test_eos_with_payload_is_rejected() -> None:
    with pytest.raises(FrameError):
        decode_frame([*encode_eos("a", 0, 0), b"extra"])


@pytest.mark.parametrize("boot", [0, 2**64 - 1, "a", "fw1.2:run-7_x", "9" * 64])
def test_v2_round_trip_carries_the_boot_as_text(boot: str | int) -> None:
    x = np.arange(8, dtype="<i2").reshape(4, 2)
    kw = dict(channels=["MLII", "V5"], units=["mV", "mV"], gain=[200.0, 200.0], baseline=[0.0, 0.0])
    parts = encode_data("dev.1", 3, 100, 360.0, x, boot=boot, **kw)  # type: ignore[arg-type]
    assert json.loads(parts[0])["v"] == 2
    frame = decode_frame(parts)
    assert isinstance(frame, DataFrame)
    assert frame.boot == str(boot)
    eos = decode_frame(encode_eos("dev.1", 4, 104, boot=boot))
    assert eos == EndOfStream("dev.1", 4, 104, boot=str(boot))


def test_v1_has_no_boot_and_a_v2_eos_needs_one() -> None:
    frame = decode_frame(data_parts())
    assert isinstance(frame, DataFrame) and frame.boot is None
    assert decode_frame(encode_eos("100", 1, 10)) == EndOfStream("100", 1, 10)
    with pytest.raises(FrameError) as info:
        decode_frame([json.dumps({"v": 2, "type": "eos", "stream": "s", "seq": 0, "start": 0}).encode()])
    assert info.value.reason == "boot"


@pytest.mark.parametrize(("fs", "n_max"), [(360.0, 3600), (0.5, 5), (1.0, 10), (100_000.0, 65536), (6553.6, 65536)])
def test_n_is_limited_to_ten_seconds_and_65536(fs: float, n_max: int) -> None:
    for n, ok in ((n_max, True), (n_max + 1, False)):
        x = np.zeros((n, 1), dtype="<i2")
        parts = encode_data("s", 0, 0, fs, x, channels=["I"], units=["mV"], gain=[1.0], baseline=[0.0], boot=1)
        if ok:
            assert isinstance(decode_frame(parts), DataFrame)
        else:
            with pytest.raises(FrameError) as info:
                decode_frame(parts)
            assert info.value.reason in ("range", "oversize")
