"""Degraded modes: a failing engine, a silent device; the monitor keeps monitoring."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zmq

from engine import Beat
from monitor._app import Monitor, MonitorConfig, Source, parse_source
from monitor._wire import encode_data
from replay._publisher import ReplayConfig
from tests.test_alarms import asystole_record


class FlakyEngine:
    """Raises on its first ``failures`` calls, then labels every beat N."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("device lost")
        return ["N"] * len(beats)


def test_failing_engine_is_surfaced_and_retried_while_alarms_go_on(tmp_path: Path) -> None:
    ticks = itertools.count()
    engine = FlakyEngine(failures=3)
    config = MonitorConfig(replay=ReplayConfig(speed=None), lockstep=True, keep_alarms=True)
    monitor = Monitor(
        parse_source(f"replay:{asystole_record(tmp_path)}"),
        config,
        classifier=engine,
        clock=lambda: next(ticks) * 0.01,  # the retry back-off runs on the monitor's clock
    )
    assert monitor.run() == 0
    kinds = [(e.kind, e.state) for e in monitor.alarm_events]
    assert ("engine_failed", "onset") in kinds and ("engine_failed", "end") in kinds
    failed = next(e for e in monitor.alarm_events if e.kind == "engine_failed")
    assert failed.category == "technical" and failed.priority == "medium"
    # the clinical alarm needs no labels: raised although the engine was down
    assert ("asystole", "onset") in kinds
    assert monitor.engine_errors == 3 and engine.calls > 3
    assert monitor.engine_problem is None  # recovered


def test_engine_failure_shows_in_status() -> None:
    monitor = Monitor(Source(endpoint="inproc://unused"), MonitorConfig(alarm_log=None), classifier=FlakyEngine(99))
    beat = Beat("s", 100, 250.0, None, None, None, None, np.zeros(200, np.float32), 0, 0.0)
    monitor._inflight["s"] = deque([100])
    monitor._classify([beat])
    status = monitor.status()
    assert status["health"] == "degraded"
    assert any("engine failed" in p for p in status["problems"])


def test_silent_device_raises_signal_lost_and_clears_when_data_resumes() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    config = MonitorConfig(keep_alarms=True, silence_s=0.3, rhythm_interval_s=0.02, poll_ms=20, alarm_log=None)
    monitor = Monitor(Source(endpoint="inproc://silent-device"), config, context=ctx)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    try:
        assert monitor.ready.wait(5)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect("inproc://silent-device")
        x = (100 * np.sin(np.arange(3600) / 9.0)).astype(np.int16)[:, None]
        kw = {"channels": ["MLII"], "units": ["mV"], "gain": [200.0], "baseline": [0]}

        def send(k: int) -> None:
            push.send_multipart(encode_data("bed-7", k, 36 * k, 360.0, x[36 * (k % 100) : 36 * (k % 100 + 1)], **kw))

        for k in range(5):
            send(k)

        def kinds() -> list[tuple[str, str]]:
            return [(e.kind, e.state) for e in list(monitor.alarm_events)]

        deadline = time.monotonic() + 5
        while ("signal_lost", "onset") not in kinds() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ("signal_lost", "onset") in kinds()
        send(5)
        deadline = time.monotonic() + 5
        while ("signal_lost", "end") not in kinds() and time.monotonic() < deadline:
            time.sleep(0.02)
        end = [e for e in list(monitor.alarm_events) if e.kind == "signal_lost" and e.state == "end"]
        assert end and end[0].end_reason == "data resumed"
        push.close()
    finally:
        monitor.stop()
        thread.join(10)
        ctx.destroy(linger=0)
