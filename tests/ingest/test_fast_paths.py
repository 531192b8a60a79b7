"""The ingest's cheaper paths (the next frame in sequence, detection work only where due, long input in
pieces) give exactly what the general paths give, on hostile multi-stream input."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest

from monitor import Ingest
from monitor.detect import _qrs
from monitor.ingest import SequenceTracker
from monitor.protocol import encode_data, encode_eos
from monitor.testing import FakeClock
from tests.conftest import lead_mv


def _messages(mitdb: Path, seed: int) -> list[list[bytes]]:
    """Several streams, interleaved: lost, duplicated and reordered frames, invalid values, a flat
    stretch, an out-of-range burst, reboots, uneven frame sizes, streams with and without an end."""
    rng = np.random.default_rng(seed)
    per_stream = []
    for i, record in enumerate(["100", "105", "119", "203", "208", "232"]):
        x, fs = lead_mv(mitdb, record, seconds=40)
        raw = np.round(x * 200).astype("<i2")
        if i == 1:
            raw[3000:6000] = raw[3000]
            raw[8000:8100] = 32000
        boot = "b1" if i % 2 else None
        seq = pos = 0
        out: list[list[bytes]] = []
        while pos < raw.size:
            n = min(36 if i % 3 == 0 else int(rng.integers(1, 150)), raw.size - pos)
            payload = raw[pos : pos + n].copy()
            extra = {"invalid": -32768} if i == 2 else {}
            if i == 2 and rng.random() < 0.05:
                payload[: max(1, n // 2)] = -32768
            msg = encode_data(
                f"s{i}", seq, pos, fs, payload, channels=["MLII"], units=["mV"], gain=[200.0], baseline=[0.0],
                **extra, **({"boot": boot} if boot else {}),
            )  # fmt: skip
            r = rng.random()
            if r < 0.03:
                pass  # lost
            elif r < 0.05:
                out += [msg, msg]
            elif r < 0.06 and out:
                out.insert(len(out) - 1, msg)  # one place early
            else:
                out.append(msg)
            if boot == "b1" and pos > 7000 and i == 3:
                boot, seq, pos, raw = "b2", 0, 0, raw[7000:]  # a reboot
                continue
            pos += n
            seq += 1
        if i != 4:
            out.append(encode_eos(f"s{i}", seq, pos, **({"boot": boot} if boot else {})))
        per_stream.append(out)
    mixed: list[list[bytes]] = []
    at = [0] * len(per_stream)
    while any(at[i] < len(s) for i, s in enumerate(per_stream)):
        for i, s in enumerate(per_stream):
            k = int(rng.integers(1, 4))
            mixed += s[at[i] : at[i] + k]
            at[i] += k
    return mixed


def _digest(messages: list[list[bytes]]) -> tuple[int, str]:
    clock = FakeClock(tick=0.001)
    ingest = Ingest(clock=clock)
    h = hashlib.sha256()
    beats = 0

    def take(found: list) -> None:  # type: ignore[type-arg]
        nonlocal beats
        for b in found:
            beats += 1
            h.update(repr((b.stream, b.sample, b.rr_prev, b.rr_next, b.rr_local, b.rr_mean)).encode())
            h.update(repr((b.window_start, b.ready_sample, b.ready_at, b.shape)).encode())
            h.update(b.window.tobytes())
        for alarm in ingest.take_technical():
            h.update(repr(alarm).encode())

    for j, msg in enumerate(messages):
        ingest.on_message(msg)
        if j % 13 == 0:
            take(ingest.step())
    take(ingest.flush_all())
    for sid, p in sorted(ingest.streams.items()):
        st = p.stats
        h.update(repr((sid, sorted(st.rejected.items()), st.frames, st.samples, st.nan_samples)).encode())
        h.update(repr((st.out_of_range, st.restarts, st.beats, st.suppressed, st.low_amplitude, st.error)).encode())
        h.update(repr((list(p.quality.states), p.quality.alarms, vars(p.tracker))).encode())
    h.update(repr(sorted(ingest.rejected.items())).encode())
    assert ingest.unaccounted() == 0
    return beats, h.hexdigest()


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_paths_give_what_the_general_paths_give(mitdb: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = _messages(mitdb, seed)
    fast = _digest(messages)
    assert fast[0] > 200
    with monkeypatch.context() as m:
        m.setattr(SequenceTracker, "follows", lambda self, seq, start: False)  # every frame: the full checks
        m.setattr(_qrs._Decider, "wake", lambda self: -(2**62))  # every stream's decision logic, every step
        m.setattr(_qrs, "_PIECE", 10**9)  # long input at once
        general = _digest(messages)
    assert fast == general


def test_follows_accepts_exactly_what_check_accepts_without_a_gap() -> None:
    rng = random.Random(4)
    a, b = SequenceTracker(max_gap=50), SequenceTracker(max_gap=50)
    for _ in range(5000):
        seq = a.next_seq + rng.choice([0, 0, 0, 1, -1, -3])
        start = a.next_sample + rng.choice([0, 0, 0, 5, -5, 80])
        if seq < 0 or start < 0:
            continue
        fast = a.follows(seq, start)
        verdict = a.check(seq, start) if not fast else None
        want = b.check(seq, start)
        if fast:
            assert want.accept and want.gap == 0
        else:
            assert verdict == want
            assert not (want.accept and want.gap == 0 and seq == b.next_seq - 1 and not verdict)
        n = rng.randint(1, 40)
        if want.accept:
            a.advance(n)
            b.advance(n)
        assert vars(a) == vars(b)
