"""Hostile input: each rule of monitor.ingest._router's docstring, its counter, and no disturbance elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import Beat
from monitor import FrameError, Ingest, decode_frame, encode_data, encode_eos
from monitor.protocol import MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES
from tests.conftest import lead_mv

KW = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])
CHUNK = 360


def data(stream: str, seq: int, start: int, x: np.ndarray, fs: float = 360.0, **extra: object) -> list[bytes]:
    kw = {**KW, **extra}
    return encode_data(stream, seq, start, fs, np.asarray(x)[:, None].astype(kw.pop("dtype", "<f4")), **kw)  # type: ignore[arg-type]


def frames(x: np.ndarray, stream: str, seq0: int = 0, start0: int = 0, chunk: int = CHUNK) -> list[list[bytes]]:
    return [data(stream, seq0 + k, start0 + i, x[i : i + chunk]) for k, i in enumerate(range(0, x.size, chunk))]


def run(ingest: Ingest, messages: list[list[bytes]]) -> list[Beat]:
    beats = [b for parts in messages for b in ingest.feed(parts)]
    beats += ingest.flush_all()
    assert ingest.unaccounted() == 0
    return beats


def key(beats: list[Beat], stream: str, shift: int = 0) -> list[tuple[int, float | None]]:
    return [(b.sample - shift, b.rr_prev) for b in beats if b.stream == stream]


@pytest.fixture
def ecg(mitdb: Path) -> tuple[np.ndarray, float]:
    return lead_mv(mitdb, "100", seconds=60)


def test_nan_inf_and_absurd_values_are_missing_samples(ecg: tuple[np.ndarray, float]) -> None:
    x, _ = ecg
    bad = x.copy()
    bad[3600:3700] = np.nan
    bad[7200:7300] = np.inf
    bad[7300:7400] = -np.inf
    bad[10800:10850] = 1e300  # beyond float32: must not reach the ring buffer as inf
    bad[14400:14410] = 5000.0  # finite, but not a body-surface ECG
    ingest = Ingest()
    msgs = [data("s", k, i, bad[i : i + CHUNK], dtype="<f8") for k, i in enumerate(range(0, x.size, CHUNK))]
    beats = run(ingest, msgs)
    st = ingest.streams["s"].stats
    assert st.nan_samples == 100 + 200 + 50 + 10 and st.out_of_range == 60
    assert st.frames == len(msgs) and not st.rejected and st.error is None
    assert all(np.isfinite(b.window).all() and np.abs(b.window).max() < 1000 for b in beats)
    clean = run(Ingest(), [data("s", k, i, x[i : i + CHUNK]) for k, i in enumerate(range(0, x.size, CHUNK))])
    # away from the damaged seconds the beats are the same
    far = {b.sample for b in clean if b.sample > 45 * 360}
    assert far and far <= {b.sample for b in beats}


def test_a_gap_longer_than_the_ring_buffer_is_filled_without_losing_beats(ecg: tuple[np.ndarray, float]) -> None:
    x, fs = ecg
    cut = 15 * 360
    msgs = frames(x[:cut], "s")
    resume = cut + round(25 * fs)  # 25 s lost: more than the buffer minus the queued input
    msgs += frames(x[resume:], "s", seq0=len(msgs) + 25, start0=resume)
    ingest = Ingest()
    beats = run(ingest, msgs)
    proc = ingest.streams["s"]
    assert proc.tracker.samples_missing == resume - cut and proc.stats.restarts == 0
    assert proc.stats.nan_samples == resume - cut
    assert any(b.sample < cut for b in beats) and any(b.sample > resume + 5 * fs for b in beats)


def test_a_rate_change_is_rejected_with_a_technical_alarm_and_monitoring_resumes(
    ecg: tuple[np.ndarray, float],
) -> None:
    x, fs = ecg
    msgs = frames(x, "s")
    for k in (20, 21, 22):  # the device sends three frames at another rate (or with other leads)
        msgs[k] = data("s", k, k * CHUNK, x[k * CHUNK : (k + 1) * CHUNK], fs=250.0)
    two = dict(channels=["I", "II"], units=["mV"] * 2, gain=[1.0] * 2, baseline=[0.0] * 2)
    msgs[23] = encode_data("s", 23, 23 * CHUNK, fs, np.zeros((CHUNK, 2), "<f4"), **two)  # type: ignore[arg-type]
    ingest = Ingest()
    beats = run(ingest, msgs)
    proc = ingest.streams["s"]
    assert proc.stats.rejected == {"format_changed": 4} and proc.fs == fs
    assert proc.stats.frames == len(msgs) - 4 and proc.tracker.samples_missing == 4 * CHUNK
    alarms = [a for a in ingest.take_technical() if a.kind == "format changed"]
    assert [(a.onset, a.end) for a in alarms] == [(20 * CHUNK, None), (20 * CHUNK, 24 * CHUNK)]
    assert any(b.sample > 30 * CHUNK for b in beats)  # monitoring resumed with the original format


def test_a_device_restart_starts_a_new_segment(ecg: tuple[np.ndarray, float]) -> None:
    x, _ = ecg
    half = 30 * CHUNK
    before, after = frames(x[:half], "s", seq0=7, start0=1000), frames(x[half:], "s")  # the restart: seq 0, start 0
    ingest = Ingest()
    beats = run(ingest, before + after)
    proc = ingest.streams["s"]
    st = proc.stats
    assert st.restarts == 1 and st.frames == len(before) + len(after) and not st.rejected and st.held == 0
    offset = 1000 + half  # the new segment follows the last sample received
    assert proc.offset == offset and proc.samples_end == 1000 + x.size
    # exactly as if the first part had ended and the second were a new stream
    alone_1 = run(Ingest(), [*before, encode_eos("s", 7 + len(before), 1000 + half)])
    alone_2 = run(Ingest(), after)
    assert key(beats, "s") == key(alone_1, "s") + key(alone_2, "s", shift=-offset)
    samples = [b.sample for b in beats]
    assert samples == sorted(samples)


def test_a_jump_far_ahead_is_a_restart(ecg: tuple[np.ndarray, float]) -> None:
    x, fs = ecg
    ahead = 30 * CHUNK + round(120 * fs)  # back after two minutes, counting on
    msgs = frames(x[: 30 * CHUNK], "s") + frames(x[30 * CHUNK :], "s", seq0=500, start0=ahead)
    ingest = Ingest()
    beats = run(ingest, msgs)
    proc = ingest.streams["s"]
    assert proc.stats.restarts == 1 and proc.offset == 30 * CHUNK - ahead and proc.samples_end == x.size
    assert proc.tracker.samples_missing == 0 and not proc.stats.rejected
    assert max(b.sample for b in beats) > 50 * fs


def test_a_repeated_burst_of_recent_frames_is_not_a_restart(ecg: tuple[np.ndarray, float]) -> None:
    x, _ = ecg
    msgs = frames(x, "s")
    msgs = msgs[:30] + msgs[27:30] + msgs[30:]  # the last three frames sent again
    ingest = Ingest()
    run(ingest, msgs)
    st = ingest.streams["s"].stats
    assert st.restarts == 0 and st.rejected == {"duplicate": 3} and st.frames == len(msgs) - 3


def test_two_devices_on_one_stream_id_keep_the_first(ecg: tuple[np.ndarray, float]) -> None:
    x, _ = ecg
    first = frames(x, "bed", seq0=100, start0=50_000)
    second = frames(x[::-1].copy(), "bed")  # another device: its own numbering and signal
    msgs = [first[0], first[1]]
    for a, b in zip(first[2:], second, strict=False):
        msgs += [a, b]
    ingest = Ingest()
    beats = run(ingest, msgs)
    st = ingest.streams["bed"].stats
    alone = run(Ingest(), first)
    assert key(beats, "bed") == key(alone, "bed")
    assert st.conflicts == 1 and st.restarts == 0 and st.frames == len(first)
    assert st.rejected["stream_conflict"] >= len(first) - 2 - 5
    assert sum(st.rejected.values()) == len(msgs) - len(first)
    alarms = [(a.kind, a.end is None) for a in ingest.take_technical() if a.kind == "stream conflict"]
    assert alarms == [("stream conflict", True), ("stream conflict", False)]


def test_when_the_first_device_stops_the_second_takes_over(ecg: tuple[np.ndarray, float]) -> None:
    x, fs = ecg
    first = frames(x[: 40 * CHUNK], "bed", seq0=100, start0=50_000)
    second = frames(x, "bed")
    msgs = []
    for k, b in enumerate(second):
        if k < len(first):
            msgs.append(first[k])
        msgs.append(b)
    ingest = Ingest()
    beats = run(ingest, msgs)
    proc = ingest.streams["bed"]
    assert proc.stats.conflicts == 1 and proc.stats.restarts == 1
    # the second device's frames sent while the first was still sending are lost, but for the last one
    assert proc.stats.frames == len(first) + len(second) - (len(first) - 1)
    assert max(b.sample for b in beats) > 50_000 + 40 * CHUNK + 10 * fs


def test_sender_clock_jumps_and_monitor_clock_jumps_change_only_latencies(ecg: tuple[np.ndarray, float]) -> None:
    x, _ = ecg
    sends = [1.7e9, 1.7e9 - 3600, 0.0, 4.1e12, -5.0, 1.7e9 + 1e6]
    msgs = []
    for k, i in enumerate(range(0, x.size, CHUNK)):
        sent = sends[k % len(sends)] if k % 7 else None
        msgs.append(data("s", k, i, x[i : i + CHUNK], sent=sent))
    ticks = iter(np.tile([100.0, 5.0, 1e9, -1e9, 100.5], 10_000).tolist())
    jumpy = run(Ingest(clock=lambda: next(ticks)), msgs)
    steady = run(Ingest(), frames(x, "s"))
    assert [(b.sample, b.rr_prev, b.rr_next, b.rr_mean) for b in jumpy] == [
        (b.sample, b.rr_prev, b.rr_next, b.rr_mean) for b in steady
    ]
    for a, b in zip(jumpy, steady, strict=True):
        np.testing.assert_array_equal(a.window, b.window)


def test_an_eos_that_goes_back_is_rejected_and_the_stream_carries_on(ecg: tuple[np.ndarray, float]) -> None:
    x, _ = ecg
    msgs = frames(x, "s")
    msgs.insert(20, encode_eos("s", 3, 3 * CHUNK))  # from the past
    msgs.append(encode_eos("s", len(msgs) + 5, x.size + 100))  # ahead: frames lost before it
    ingest = Ingest()
    for parts in msgs:
        ingest.feed(parts)
    st = ingest.streams["s"].stats
    assert st.rejected == {"eos_mismatch": 1} and st.eos_early == 1 and st.ended and st.eos_received == 1
    assert ingest.unaccounted() == 0


def test_a_failure_inside_one_stream_is_confined(
    ecg: tuple[np.ndarray, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = ecg
    ingest = Ingest()
    ingest.feed(frames(x, "a")[0])
    ingest.feed(frames(x, "b")[0])

    def boom(samples: np.ndarray) -> None:
        raise ZeroDivisionError("quality exploded")

    monkeypatch.setattr(ingest.streams["a"].quality, "process", boom)
    for pa, pb in zip(frames(x, "a")[1:], frames(x, "b")[1:], strict=True):
        ingest.feed(pa)
        ingest.feed(pb)
    ingest.flush_all()
    a, b = ingest.streams["a"].stats, ingest.streams["b"].stats
    assert a.error == "ZeroDivisionError: quality exploded"
    assert a.rejected["internal_error"] == 1 and a.rejected["stream_failed"] == len(frames(x, "a")) - 2
    assert b.error is None and b.ended and b.beats > 60
    assert ingest.unaccounted() == 0


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([b"{}", b"", b"", b""], "parts"),
        ([b"{}"] * 1000, "parts"),
        (["not bytes"], "parts"),
        ([b"{" * (MAX_HEADER_BYTES + 1)], "header_size"),
        ([b"{}", bytes(MAX_PAYLOAD_BYTES + 1)], "oversize"),
        ([b"[" * 2000 + b"]" * 2000], "json"),
        ([b'{"v": ' + b"[" * 900 + b"]" * 900 + b"}"], "version"),
        ([b'{"v": true}'], "version"),
    ],
)
def test_oversize_and_odd_messages_are_rejected_before_parsing(parts: list[bytes], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(parts)
    assert info.value.reason == reason
    ingest = Ingest()
    ingest.feed(parts)
    assert ingest.rejected == {reason: 1} and ingest.unaccounted() == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"stream": "bed-1\n"}, "stream"),
        ({"fs": 10**400}, "header"),
        ({"gain": [10**400]}, "header"),
        ({"invalid": 2**70}, "range"),
        ({"sent": float("nan")}, "header"),
    ],
)
def test_header_values_that_used_to_slip_through_or_crash(overrides: dict[str, object], reason: str) -> None:
    parts = data("s", 0, 0, np.zeros(10))
    header = {**json.loads(parts[0]), **overrides}
    with pytest.raises(FrameError) as info:
        decode_frame([json.dumps(header).encode(), parts[1]])
    assert info.value.reason == reason
