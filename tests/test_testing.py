"""The public test helpers of monitor.testing: each does what its docstring says."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import wfdb
import zmq

from engine import Beat
from monitor import DataFrame, EndOfStream, FrameError, Ingest, StreamConfig, beats_of_signal, decode_frame
from monitor.alarms import Vitals
from monitor.testing import (
    FUZZ_KINDS,
    FUZZ_WEIGHTS,
    FakeClock,
    FuzzDevice,
    VitalsRecorder,
    detect_in_signal,
    ecg,
    frames_of,
    fuzz_ecg,
    fuzz_garbage,
    random_kind,
    run_frames,
    send_frames,
    send_signal,
    write_record,
)

FS = 250.0


@pytest.fixture(scope="module")
def sinus() -> tuple[np.ndarray, np.ndarray]:
    return ecg([0.8] * 20, FS, tail_s=1.0)


def key(beats: Sequence[Beat]) -> list[tuple[str, int, float | None]]:
    return [(b.stream, b.sample, b.rr_prev) for b in beats]


# ------------------------------------------------------------------ FakeClock


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock() == clock() == 100.0 and clock.reads == 2
    assert clock.advance(0.5) == 100.5 and clock() == 100.5
    clock.sleep(1.5)
    assert clock() == 102.0
    clock.set(5.0)  # a jump back
    assert clock() == 5.0
    with pytest.raises(ValueError, match="non-negative"):
        clock.advance(-1.0)


def test_fake_clock_tick_is_the_cost_of_a_read() -> None:
    clock = FakeClock(tick=0.25)
    assert [clock() for _ in range(3)] == [0.0, 0.25, 0.5]
    assert clock.now == 0.75


def test_fake_clock_drives_the_ingest_arrival_times(sinus: tuple[np.ndarray, np.ndarray]) -> None:
    clock = FakeClock(1000.0)
    ingest = Ingest(clock=clock)
    messages = frames_of(sinus[0], FS, chunk=250)
    for parts in messages[:3]:
        ingest.feed(parts)
        clock.advance(1.0)
    stats = ingest.streams["s"].stats
    assert stats.first_arrival == 1000.0 and stats.last_arrival == 1002.0


# ------------------------------------------------------------------ synthetic ECG


def test_ecg_puts_r_peaks_where_it_says(sinus: tuple[np.ndarray, np.ndarray]) -> None:
    x, peaks = sinus
    assert peaks.tolist() == [round((0.8 + 0.8 * k) * FS) for k in range(21)]
    assert x.size == round((0.8 + 16.0 + 1.0) * FS)
    for p in peaks:
        assert np.argmax(x[p - 10 : p + 11]) == 10  # the local maximum is the R peak
    assert 0.9 < x[peaks].mean() < 1.1


def test_ecg_is_seeded_and_can_draw_wide_complexes() -> None:
    a, _ = ecg([0.8] * 3, FS, seed=4)
    b, _ = ecg([0.8] * 3, FS, seed=4)
    c, _ = ecg([0.8] * 3, FS, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    wide, peaks = ecg([0.8] * 3, FS, wide=[False, True, False, False], noise_mv=0.0)
    narrow, _ = ecg([0.8] * 3, FS, noise_mv=0.0)
    p = peaks[1]
    assert wide[p] > narrow[p]  # 1.4 mV instead of 1 mV
    assert wide[p + round(0.3 * FS)] < 0 < narrow[p + round(0.28 * FS)]  # discordant T wave
    with pytest.raises(ValueError):
        ecg([0.8] * 3, FS, wide=[True])


def test_write_record_stores_one_lead_in_mv(tmp_path: Path, sinus: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = sinus
    path = write_record(tmp_path / "db", "rec", x, FS)
    assert path == tmp_path / "db" / "rec"
    rec = wfdb.rdrecord(str(path))
    assert rec.fs == FS and rec.sig_name == ["MLII"] and rec.units == ["mV"] and rec.adc_gain == [200.0]
    np.testing.assert_allclose(rec.p_signal[:, 0], x, atol=0.5 / 200 + 1e-9)


# ------------------------------------------------------------------ wire frames


def test_frames_of_numbers_frames_and_ends_the_stream(sinus: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = sinus
    messages = frames_of(x, FS, stream="bed-1", chunk=100, seq=7, start=1000)
    frames = [decode_frame(parts) for parts in messages]
    data = [f for f in frames if isinstance(f, DataFrame)]
    assert len(data) == len(frames) - 1 == -(-x.size // 100)
    assert [f.seq for f in data] == list(range(7, 7 + len(data)))
    assert [f.start for f in data] == list(range(1000, 1000 + x.size, 100))
    assert all(f.stream == "bed-1" and f.fs == FS and f.dtype == "<f4" and f.channels == ("II",) for f in data)
    np.testing.assert_allclose(np.concatenate([f.millivolts(0) for f in data]), x, rtol=1e-6, atol=1e-6)
    eos = frames[-1]
    assert isinstance(eos, EndOfStream) and (eos.seq, eos.start) == (7 + len(data), 1000 + x.size)


def test_frames_of_keeps_integer_samples_and_their_description() -> None:
    raw = np.arange(-50, 50, dtype=np.int16)[:, None].repeat(2, axis=1)
    messages = frames_of(raw, 360.0, chunk=36, eos=False, channels=("I", "II"), units=("mV", "mV"),
                         gain=(200.0, 200.0), baseline=(0.0, 0.0), invalid=-32768)  # fmt: skip
    frames = [decode_frame(parts) for parts in messages]
    assert len(frames) == 3 and all(isinstance(f, DataFrame) for f in frames)
    first = frames[0]
    assert isinstance(first, DataFrame)
    assert first.dtype == "<i2" and first.channels == ("I", "II") and first.invalid == -32768
    np.testing.assert_array_equal(first.samples, raw[:36])
    with pytest.raises(ValueError, match="chunk"):
        frames_of(raw, 360.0, chunk=0)


def test_send_signal_over_push_and_send_frames_over_dealer(
    ctx: zmq.Context[zmq.Socket[bytes]], sinus: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = sinus
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        for sock in (pull, push, router, dealer):
            sock.setsockopt(zmq.LINGER, 0)
        pull.bind("inproc://frames-push")
        push.connect("inproc://frames-push")
        router.bind("inproc://frames-dealer")
        dealer.connect("inproc://frames-dealer")
        expected = frames_of(x, FS, stream="a", chunk=250)
        assert send_signal(push, x, FS, stream="a", chunk=250) == len(expected)
        got = [pull.recv_multipart() for _ in expected if pull.poll(2000)]
        assert got == expected
        assert send_frames(dealer, expected[:2]) == 2
        routed = [router.recv_multipart() for _ in range(2) if router.poll(2000)]
        assert [parts[1:] for parts in routed] == expected[:2]  # after the dealer's identity
    finally:
        for sock in (pull, push, router, dealer):
            sock.close(linger=0)


# ------------------------------------------------------------------ ingest without sockets


def test_run_frames_gives_the_beats_of_the_signal_at_any_chunking(sinus: tuple[np.ndarray, np.ndarray]) -> None:
    x, peaks = sinus
    whole = beats_of_signal(x, FS, stream="s", channels=("II",))
    assert len(whole) > 15
    for chunk in (25, 250):
        assert key(run_frames(frames_of(x, FS, chunk=chunk))) == key(whole)
    found = np.array([b.sample for b in whole])
    assert np.abs(found[:, None] - peaks[None, :]).min(axis=1).max() <= 0.03 * FS


def test_run_frames_on_a_given_ingest_and_without_flush(sinus: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = sinus
    messages = frames_of(x, FS, chunk=250, eos=False)
    ingest = Ingest()
    some = run_frames(messages, ingest=ingest, flush=False)
    assert not ingest.streams["s"].stats.ended and ingest.unaccounted() == 0
    rest = ingest.flush_all()
    assert rest and key(some + rest) == key(run_frames(messages))
    with pytest.raises(ValueError, match="not both"):
        run_frames(messages, StreamConfig(), ingest=Ingest())


def test_detect_in_signal_reuses_beats_of_signal(sinus: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = sinus
    expected = key(beats_of_signal(x, FS, stream="bed-2", channels=("II",)))
    assert key(detect_in_signal(x, FS, stream="bed-2")) == expected
    assert key(detect_in_signal(x, FS, stream="bed-2", chunk=36)) == expected
    raw = np.round(x * 200).astype(np.int16)
    scaled = detect_in_signal(raw, FS, stream="bed-2", gain=(200.0,), chunk=50)
    assert [b.sample for b in scaled] == [s for _, s, _ in expected]


# ------------------------------------------------------------------ hostile devices


def test_fuzz_kinds_and_weights_match() -> None:
    assert len(FUZZ_KINDS) == len(set(FUZZ_KINDS)) == FUZZ_WEIGHTS.size and (FUZZ_WEIGHTS > 0).all()
    rng = np.random.default_rng(0)
    drawn = Counter(random_kind(rng) for _ in range(4000))
    assert set(drawn) <= set(FUZZ_KINDS)
    assert drawn.most_common(1)[0][0] == "valid"


def test_fuzz_ecg_is_seeded() -> None:
    a = fuzz_ecg(5, np.random.default_rng(1))
    np.testing.assert_array_equal(a, fuzz_ecg(5, np.random.default_rng(1)))
    assert a.size == 5 * 360 and np.isfinite(a).all() and a.max() > 0.8


def test_a_fuzz_device_sends_valid_frames_in_sequence() -> None:
    device = FuzzDevice("bed-1", np.random.default_rng(0), signal=np.zeros(5000))
    frames = [decode_frame(parts) for _ in range(20) for parts in device.message("valid")]
    assert all(isinstance(f, DataFrame) and f.stream == "bed-1" for f in frames)
    data = [f for f in frames if isinstance(f, DataFrame)]
    assert [f.seq for f in data] == list(range(data[0].seq, data[0].seq + 20))
    assert all(b.start == a.start + a.n for a, b in itertools.pairwise(data))


def test_every_fuzz_kind_gives_messages_and_the_device_is_seeded() -> None:
    def play(seed: int) -> list[list[list[bytes]]]:
        device = FuzzDevice("bed-1", np.random.default_rng(seed))
        return [device.message(kind) for kind in FUZZ_KINDS for _ in range(3)]

    first = play(3)
    assert first == play(3) and first != play(4)
    for messages in first:
        assert messages and all(isinstance(parts, list) for parts in messages)
        assert all(isinstance(p, bytes) for parts in messages for p in parts)
    with pytest.raises(ValueError, match="unknown fuzz message kind"):
        FuzzDevice("bed-1", np.random.default_rng(0)).message("polite")


def test_fuzz_garbage_is_never_a_frame() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        with pytest.raises(FrameError):
            decode_frame(fuzz_garbage(rng))


def test_the_ingest_accounts_for_every_fuzz_message() -> None:
    rng = np.random.default_rng(1)
    devices = [FuzzDevice(f"bed-{i}", rng, fuzz_ecg(20, rng)) for i in range(3)]
    ingest = Ingest()
    sent = 0
    for _ in range(300):
        kind = random_kind(rng)
        batch = [fuzz_garbage(rng)] if kind == "garbage" else devices[int(rng.integers(0, 3))].message(kind)
        for parts in batch:
            ingest.on_message(parts)
            sent += 1
        if rng.random() < 0.2:
            ingest.step()
            assert ingest.unaccounted() == 0
    ingest.flush_all()
    assert ingest.messages == sent and ingest.unaccounted() == 0


# ------------------------------------------------------------------ outputs


def test_vitals_recorder_keeps_every_record() -> None:
    recorder = VitalsRecorder()
    records = [Vitals("bed-1", k * 250, FS, 75.0 if k else None, 0.0, "good", ()) for k in range(3)]
    for v in records:
        recorder.on_vitals(v)
    assert recorder.vitals == records


def test_the_clock_fixture_is_a_fake_clock(clock: FakeClock) -> None:
    assert clock() == 0.0
    clock.advance(2.0)
    assert clock() == 2.0
