"""Waveform strips on the alert bus: decimation that does not depend on chunking, NaN as no signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zmq

from monitor.outputs import AlertBus, WaveChunk, WaveDecimator, WaveTap
from monitor.protocol import check_body, decode_message
from tests.conftest import lead_mv


def _run(dec: WaveDecimator, x: np.ndarray, sizes: list[int], start: int = 0) -> list[WaveChunk]:
    out, i, k = [], 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        out += dec.feed(start + i, x[i : i + n])
        i += n
        k += 1
    return out


def test_strips_are_the_same_whatever_the_chunking(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=20)
    whole = _run(WaveDecimator("s", fs), x, [x.size])
    assert len(whole) == 2500 // 31  # 125 values a second for 20 s, in chunks of 31 (0.25 s)
    for sizes in ([1], [7, 360, 13], [3600]):
        chunked = _run(WaveDecimator("s", fs), x, sizes)
        assert [(c.sample, c.position, len(c.values)) for c in chunked] == [
            (c.sample, c.position, len(c.values)) for c in whole
        ]
        a = np.array([v for c in chunked for v in c.values], dtype=float)
        b = np.array([v for c in whole for v in c.values], dtype=float)
        assert np.allclose(a, b, rtol=0, atol=1e-9)  # the same up to floating-point rounding
    values = np.array([v for c in whole for v in c.values], dtype=float)
    assert values.size == sum(len(c.values) for c in whole) and all(len(c.values) == 31 for c in whole)
    # 125 values a second that follow the ECG: its R peaks stay near full height
    t = np.arange(values.size) * fs / 125.0
    ref = np.interp(t, np.arange(x.size), x)
    assert np.corrcoef(values, ref)[0, 1] > 0.97
    assert values.max() > 0.85 * x.max()
    assert [c.sample for c in whole[:3]] == [0, round(31 * fs / 125.0), round(62 * fs / 125.0)]


@pytest.mark.parametrize("fs", [128.0, 250.0, 500.0])
def test_any_source_rate_gives_125_values_a_second(fs: float) -> None:
    t = np.arange(int(8 * fs)) / fs
    x = np.sin(2 * np.pi * 1.0 * t)
    chunks = _run(WaveDecimator("s", fs), x, [97])
    n = sum(len(c.values) for c in chunks)
    assert abs(n - 8 * 125) <= 31
    v = np.array([x for c in chunks for x in c.values], dtype=float)
    assert np.abs(v[200:] - np.sin(2 * np.pi * np.arange(200, v.size) / 125.0)).max() < 0.1


def test_lost_samples_are_no_signal_and_a_gap_restarts_the_strip() -> None:
    fs = 250.0
    x = np.sin(np.arange(2500) / 20.0)
    x[1000:1100] = np.nan
    chunks = WaveDecimator("s", fs).feed(0, x)
    values = [v for c in chunks for v in c.values]
    assert any(v is None for v in values) and sum(v is None for v in values) < 60
    assert values[-1] is not None and values[0] is not None
    dec = WaveDecimator("s", fs)
    dec.feed(0, x[:500])
    after = dec.feed(5000, x[:500])  # samples 500-4999 never came
    assert after and after[0].sample == 5000


def test_the_tap_publishes_schema_valid_strips_on_the_bus(ctx: zmq.Context[zmq.Socket[bytes]], mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=4)

    class Ring:
        start, end = 0, 0

        def read(self, a: int, b: int) -> np.ndarray:
            return x[a:b, None]

    class Proc:
        stream = "bed-1"
        lead_name = "MLII"
        display = None

        def __init__(self, fs: float) -> None:
            self.fs = fs
            self.ring = Ring()

    bus = AlertBus(ctx, "inproc://wave-test", monitor="m1", clock=lambda: 5.0)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect("inproc://wave-test")
    sub.subscribe(b"wave/")
    bus.serve_subscriptions()
    tap = WaveTap(bus.wave, every_s=0.0)
    proc = Proc(fs)
    assert tap.poll([proc]) == 0
    proc.ring.end = 720  # two seconds arrive
    assert tap.poll([proc]) == 250 // 31  # whole chunks only
    assert tap.poll([proc]) == 0  # nothing new
    proc.ring.end = x.shape[0]
    tap.poll([proc])
    got = []
    while sub.poll(200):
        topic, body = decode_message(sub.recv_multipart())
        got.append((topic, body))
    assert got and all(t == "wave/bed-1/" for t, _ in got)
    bodies = [b for _, b in got]
    assert [b["seq"] for b in bodies] == list(range(1, len(bodies) + 1))
    assert all(check_body(json.loads(json.dumps(b))) == b and b["lead"] == "MLII" for b in bodies)
    assert all(b["fs"] == 125.0 and b["source_fs"] == fs and b["units"] == "mV" for b in bodies)
    assert len(bodies) >= 14  # 4 s in 0.25 s chunks
    assert tap.poll([]) == 0 and not tap._streams  # a stream no longer there is forgotten
    sub.close()
    bus.close()


def test_a_second_lead_is_drawn_only_while_wanted() -> None:
    x = np.random.default_rng(3).standard_normal((2000, 1))

    class Ring:
        start = 0
        end = 1000

        def read(self, a: int, b: int) -> np.ndarray:
            return x[a:b]

    class Lead:
        name = "V1"
        ring = Ring()

    class Proc:
        stream = "bed-1"
        lead_name = "II"
        fs = 250.0
        ring = Lead.ring
        display = Lead()

    got: list[tuple[str, bool]] = []
    wanted = {"bed-1": False}
    tap = WaveTap(lambda chunk, lead, monitored=True: got.append((lead, monitored)), every_s=0.0,
                  second=lambda s: wanted[s])  # fmt: skip
    tap.poll([Proc()])
    assert got and {g for g in got} == {("II", True)}
    got.clear()
    wanted["bed-1"] = True
    Ring.end = 1500  # both leads advance
    tap.poll([Proc()])
    assert ("V1", False) in got and ("II", True) in got
    assert sum(1 for g in got if g == ("V1", False)) > sum(1 for g in got if g == ("II", True))  # from the ring start
    wanted["bed-1"] = False
    tap.poll([Proc()])
    assert not tap._seconds  # no longer wanted: forgotten
