from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zmq

from monitor import ConfigError, DataFrame, EndOfStream, decode_frame
from replay import ReplayConfig, Replayer, load_record, parse_speed, resolve_record, stream_ids


def collect(ctx: zmq.Context[zmq.Socket[bytes]], replayer: Replayer) -> list[DataFrame | EndOfStream]:
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("inproc://replay-test")
    stop = threading.Event()
    thread = replayer.start_thread(ctx, "inproc://replay-test", stop)
    frames = []
    ended = 0
    while ended < len(replayer.refs):
        assert pull.poll(5000), "replay stalled"
        frame = decode_frame(pull.recv_multipart())
        frames.append(frame)
        ended += isinstance(frame, EndOfStream)
    thread.join(5)
    pull.close()
    assert replayer.error is None
    return frames


def test_replay_sends_every_sample_in_order(ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path) -> None:
    ref = resolve_record(str(mitdb / "100"))
    frames = collect(ctx, Replayer([ref], ReplayConfig(speed=None, chunk_s=1.0)))
    data = [f for f in frames if isinstance(f, DataFrame)]
    assert [f.seq for f in data] == list(range(len(data)))
    assert isinstance(frames[-1], EndOfStream) and frames[-1].start == 650000
    samples = np.concatenate([f.samples for f in data])
    np.testing.assert_array_equal(samples, load_record(ref).samples)
    assert data[0].n == 360 and data[1].start == 360


def test_several_records_interleave_as_separate_streams(ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path) -> None:
    refs = [resolve_record("100", mitdb), resolve_record("100", mitdb), resolve_record("101", mitdb)]
    assert stream_ids(refs) == ["100", "100-2", "101"]
    frames = collect(ctx, Replayer(refs, ReplayConfig(speed=None, chunk_s=5.0)))
    first = [f.stream for f in frames[:3]]
    assert sorted(first) == ["100", "100-2", "101"]  # time-ordered, not one record after another
    assert {f.stream for f in frames if isinstance(f, EndOfStream)} == {"100", "100-2", "101"}


def test_pacing_targets_are_absolute(mitdb: Path) -> None:
    """Chunk k leaves at t0 + (k+1) * chunk / speed, whatever the send costs."""
    now = [100.0]
    waits: list[float] = []

    def clock() -> float:
        now[0] += 0.003  # every clock read costs 3 ms: drift must not build up
        return now[0]

    def wait(event: threading.Event, seconds: float) -> bool:
        waits.append(seconds)
        now[0] += seconds
        return False

    sent: list[float] = []

    class Sink:
        def poll(self, timeout: int, flags: int) -> int:
            return 1

        def send_multipart(self, parts: list[bytes], flags: int = 0) -> None:
            sent.append(now[0])

    replayer = Replayer([resolve_record("100", mitdb)], ReplayConfig(speed=2.0, chunk_s=0.5), clock=clock, wait=wait)
    stop = threading.Event()

    original = replayer._send

    def limited(sock: object, parts: list[bytes], ev: threading.Event) -> bool:
        ok = original(sock, parts, ev)  # type: ignore[arg-type]
        if len(sent) >= 40:
            stop.set()
        return ok

    replayer._send = limited  # type: ignore[method-assign]
    replayer.run(Sink(), stop)  # type: ignore[arg-type]
    t0 = 100.003
    for k, t in enumerate(sent[:40]):
        assert t == pytest.approx(t0 + (k + 1) * 0.25, abs=0.0075)


def test_speed_parsing() -> None:
    assert parse_speed("max") is None and parse_speed("20") == 20.0
    for bad in ("-1", "0", "nan", "fast", "inf"):
        with pytest.raises(ConfigError, match="--speed"):
            parse_speed(bad)


def test_loop_keeps_sample_indices_growing(ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path) -> None:
    ref = resolve_record("100", mitdb)
    replayer = Replayer([ref], ReplayConfig(speed=None, chunk_s=10.0, loop=True))
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("inproc://loop-test")
    stop = threading.Event()
    thread = replayer.start_thread(ctx, "inproc://loop-test", stop)
    starts = []
    for _ in range(200):
        assert pull.poll(5000)
        frame = decode_frame(pull.recv_multipart())
        assert isinstance(frame, DataFrame)
        starts.append(frame.start)
    stop.set()
    thread.join(5)
    pull.close()
    assert starts[-1] > 650000 and np.all(np.diff(starts) > 0)
