"""A device that sends its samples as fast as it can (a burst in one turn of the monitor) gets, on the alert bus,
the alarm onsets and vitals of one that sends them at real time: each carries the sample where it was decided,
never the end of the burst."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import zmq

from monitor.alarms import AlarmEvent, Vitals
from monitor.app import Monitor, MonitorConfig, Source
from monitor.outputs import AlertBus, BusSink
from monitor.protocol import decode_message
from monitor.testing import FakeClock, VitalsRecorder, ecg, frames_of
from tests.app.test_sample_clock import RuleClassifier

FS = 360.0
BURST_S = 60
_endpoints = itertools.count()


def device_signal() -> tuple[np.ndarray, np.ndarray]:
    """70 s of sinus rhythm (RR 0.8 s) with a 3.2 s pause at about 15 s and 6.5 s without a beat (low noise and
    baseline wander: no QRS, but not the flat line of leads off) at about 35 s; and the R peaks."""
    rr = [0.8] * 17 + [3.2] + [0.8] * 20 + [6.5] + [0.8] * 40
    x, peaks = ecg(rr, FS, start_s=0.5, tail_s=1.0, seed=3)
    n = round(70 * FS)
    assert len(x) >= n
    return x[:n], peaks[peaks < n]


@dataclass
class Seen:
    """What one run put on the bus (bodies without their publication time) and handed to the sinks."""

    bodies: list[dict[str, Any]]
    events: list[AlarmEvent]
    vitals: list[Vitals]
    ended: int

    def alarms(self, state: str | None = None) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["type"] == "alarm" and state in (None, b["state"])]


def run(ctx: zmq.Context[zmq.Socket[bytes]], burst_s: int) -> Seen:
    """The device's frames (1 s each, then end-of-stream) through a monitor: the first ``burst_s`` seconds in one
    turn, then one frame a turn with the wall clock a second on (``burst_s=0``: the whole signal at real time)."""
    x, _ = device_signal()
    frames = frames_of(x, FS, stream="bed-1", chunk=round(FS))
    clock = FakeClock(100.0)
    config = MonitorConfig(alarm_log=None, engine_thread=False, silence_s=5.0)
    monitor = Monitor(
        Source(endpoint="inproc://unpaced-ingest"), config, classifier=RuleClassifier(), clock=clock,
        record_alarms=True,
    )  # fmt: skip
    recorder = VitalsRecorder()
    endpoint = f"inproc://unpaced-bus-{next(_endpoints)}"
    bus = AlertBus(ctx, endpoint, monitor="m1", clock=clock)
    sub = ctx.socket(zmq.SUB)
    bodies: list[dict[str, Any]] = []
    try:
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(endpoint)
        sub.subscribe(b"alarm/")
        sub.subscribe(b"vitals/")
        for _ in range(400):  # both subscriptions reach the bus before anything is published
            if bus.subscriptions >= 2:
                break
            bus.serve_subscriptions()
            threading.Event().wait(0.005)
        assert bus.subscriptions >= 2
        monitor.add_sink(BusSink(bus, monitor.locate))
        monitor.add_sink(recorder)

        def turn(messages: list[list[bytes]]) -> None:
            monitor.process(messages)
            while sub.poll(0):
                topic, body = decode_message(sub.recv_multipart())
                assert topic.startswith(("alarm/bed-1/", "vitals/bed-1/"))
                bodies.append({k: v for k, v in body.items() if k != "time"})

        turn(frames[:burst_s])
        for message in frames[burst_s:]:
            clock.advance(1.0)
            turn([message])
        for _ in range(20):  # the last labels come back and the stream finishes
            if monitor.streams["bed-1"].finished:
                break
            clock.advance(0.5)
            turn([])
        assert monitor.streams["bed-1"].finished
        assert bus.dropped == 0
    finally:
        sub.close()
        bus.close()
    return Seen(bodies, monitor.alarm_events, recorder.vitals, monitor.ingest.streams["bed-1"].samples_end)


@pytest.mark.parametrize("burst_s", [BURST_S, len(device_signal()[0]) // round(FS) + 1], ids=["60s", "all"])
def test_a_burst_gives_the_onsets_and_vitals_of_real_time(ctx: zmq.Context[zmq.Socket[bytes]], burst_s: int) -> None:
    paced = run(ctx, 0)
    unpaced = run(ctx, burst_s)
    # the run means something: a pause, then asystole, decided inside the burst
    _, peaks = device_signal()
    gaps = np.flatnonzero(np.diff(peaks) > 3 * FS)
    before_pause, before_asystole = (int(peaks[g]) for g in gaps)
    onsets = [(b["kind"], b["onset_sample"], b["sample"]) for b in paced.alarms("onset")]
    assert [kind for kind, _, _ in onsets] == ["pause", "pause", "asystole"], onsets
    for (_, onset, _), last_beat in zip(onsets, (before_pause, before_asystole, before_asystole), strict=True):
        assert abs(onset - last_beat) <= 0.05 * FS, onsets  # the last R peak before the stretch, as detected
    pause_at, asystole_at = onsets[0][2], onsets[2][2]  # decided at the first second past 2.5 s and 4 s
    assert before_pause + 2.5 * FS <= pause_at < before_pause + 3.5 * FS
    assert before_asystole + 4 * FS <= asystole_at < before_asystole + 5 * FS
    assert all(b["category"] == "clinical" for b in paced.alarms())  # no signal lost, no leads off
    burst_end = BURST_S * round(FS)
    for seen in (paced, unpaced):
        for body in seen.alarms("onset") + seen.alarms("update"):
            assert body["sample"] < burst_end, body
    # the same on the bus: every alarm transition and every vitals body, in order
    assert unpaced.alarms() == paced.alarms()
    vitals = [b for b in paced.bodies if b["type"] == "vitals"]
    assert [b for b in unpaced.bodies if b["type"] == "vitals"] == vitals
    assert len(vitals) == 70 and {b["quality"] for b in vitals} <= {"clean", "noisy", "no QRS"}
    assert any("asystole" in b["active_alarms"] for b in vitals)
    # and so to every sink
    assert unpaced.events == paced.events
    assert unpaced.vitals == paced.vitals
    assert unpaced.ended == paced.ended == len(device_signal()[0])
