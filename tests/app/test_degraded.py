"""Degraded modes: a failing engine, a silent device; the monitor keeps monitoring."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from engine import Beat
from monitor.app import Monitor, MonitorConfig, Source, parse_source
from monitor.protocol import encode_data
from replay._publisher import ReplayConfig
from tests.outputs.test_alarms import asystole_record


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
    config = MonitorConfig(replay=ReplayConfig(speed=None))
    monitor = Monitor(
        parse_source(f"replay:{asystole_record(tmp_path)}"),
        config,
        classifier=engine,
        clock=lambda: next(ticks) * 0.01,  # the retry back-off runs on the monitor's clock
        lockstep=True,
        record_alarms=True,
    )
    assert monitor.run() == 0
    kinds = [(e.kind, e.state) for e in monitor.alarm_events]
    assert ("engine_failed", "onset") in kinds and ("engine_failed", "end") in kinds
    failed = next(e for e in monitor.alarm_events if e.kind == "engine_failed")
    assert failed.category == "technical" and failed.priority == "medium"
    # the clinical alarm needs no labels: raised although the engine was down
    assert ("asystole", "onset") in kinds
    assert monitor.engine.errors == 3 and engine.calls > 3
    assert monitor.engine.problem is None  # recovered


def test_engine_failure_shows_in_status() -> None:
    config = MonitorConfig(alarm_log=None, engine_thread=False)
    monitor = Monitor(Source(endpoint="inproc://unused"), config, classifier=FlakyEngine(99))
    beat = Beat("s", 100, 250.0, None, None, None, None, np.zeros(200, np.float32), 0, 0.0)
    monitor.labels.queue(beat)
    monitor.labels.flush()
    status = monitor.status()
    assert status["health"] == "degraded"
    assert any("engine failed" in p for p in status["problems"])


def _live_monitor(
    ctx: zmq.Context[zmq.Socket[bytes]], name: str, engine: object = None, **settings: Any
) -> tuple[Monitor, threading.Thread]:
    """A monitor listening on ``inproc://<name>``, running on a thread (stop it and join the thread)."""
    config = MonitorConfig(alarm_log=None, poll_ms=20, rhythm_interval_s=0.02, **settings)
    source = Source(endpoint=f"inproc://{name}")
    monitor = Monitor(source, config, context=ctx, classifier=engine, record_alarms=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=monitor.run)
    thread.start()
    assert monitor.ready.wait(5)
    return monitor, thread


def _device(ctx: zmq.Context[zmq.Socket[bytes]], name: str) -> zmq.Socket[bytes]:
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(f"inproc://{name}")
    return push


def test_silent_device_raises_signal_lost_and_clears_when_data_resumes() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    monitor, thread = _live_monitor(ctx, "silent-device", silence_s=0.3)
    try:
        push = _device(ctx, "silent-device")
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


class SlowEngine:
    """Takes ``seconds`` per batch (a stalled GPU, a far engine)."""

    name = "slow"

    def __init__(self, seconds: float, error: BaseException | None = None) -> None:
        self.seconds = seconds
        self.error = error
        self.calls = 0

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        self.calls += 1
        time.sleep(self.seconds)
        if self.error is not None:
            raise self.error
        return ["N"] * len(beats)


def _send_ecg(ctx: zmq.Context[zmq.Socket[bytes]], name: str, seconds: int) -> int:
    from monitor.testing import ecg

    x, _ = ecg([0.8] * round(seconds / 0.8), 250.0, tail_s=0.5)
    raw = np.round(x * 200).astype(np.int16)[:, None]
    push = _device(ctx, name)
    push.setsockopt(zmq.LINGER, 1000)
    kw = {"channels": ["MLII"], "units": ["mV"], "gain": [200.0], "baseline": [0]}
    for k, i in enumerate(range(0, raw.shape[0] - 25, 25)):
        push.send_multipart(encode_data("bed-1", k, i, 250.0, raw[i : i + 25], **kw))
    push.close()
    return raw.shape[0] // 25


def test_ingest_keeps_up_while_the_engine_is_slow() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    engine = SlowEngine(0.4)
    monitor, thread = _live_monitor(ctx, "slow-engine", engine)
    try:
        frames = _send_ecg(ctx, "slow-engine", 60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            proc = monitor.ingest.streams.get("bed-1")
            if proc is not None and proc.stats.frames >= frames - 1:
                break
            time.sleep(0.01)
        proc = monitor.ingest.streams["bed-1"]
        # every frame was taken while the engine had labelled only a few batches
        assert proc.stats.frames >= frames - 1
        assert engine.calls <= 8
        assert proc.stats.beats >= 60
    finally:
        monitor.stop()
        thread.join(20)
        ctx.destroy(linger=0)
    # shutdown drained the queue: every beat got a label
    assert monitor.labels.labeled == monitor.ingest.streams["bed-1"].stats.beats


def test_engine_thread_failures_are_surfaced() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    monitor, thread = _live_monitor(ctx, "failing-engine", SlowEngine(0.0, RuntimeError("CUDA error")))
    try:
        _send_ecg(ctx, "failing-engine", 20)
        deadline = time.monotonic() + 10
        while monitor.engine.errors == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.engine.errors >= 1
        assert any(e.kind == "engine_failed" for e in list(monitor.alarm_events))
        assert "CUDA error" in (monitor.engine.problem or "")
    finally:
        monitor.stop()
        thread.join(20)
        ctx.destroy(linger=0)


def test_ended_streams_are_forgotten_and_their_id_can_start_again() -> None:
    from monitor.protocol import encode_eos

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    monitor, thread = _live_monitor(ctx, "reuse", retain_ended_s=0.1)
    try:
        push = _device(ctx, "reuse")
        x = (100 * np.sin(np.arange(360) / 9.0)).astype(np.int16)[:, None]
        kw = {"channels": ["MLII"], "units": ["mV"], "gain": [200.0], "baseline": [0]}
        for k in range(10):
            push.send_multipart(encode_data("bed-9", k, 36 * k, 360.0, x[36 * k : 36 * (k + 1)], **kw))
        push.send_multipart(encode_eos("bed-9", 10, 360))
        deadline = time.monotonic() + 5
        while monitor.streams.forgotten == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert monitor.streams.forgotten == 1 and "bed-9" not in monitor.ingest.streams
        for k in range(3):  # the device starts again under the same id
            push.send_multipart(encode_data("bed-9", k, 36 * k, 360.0, x[36 * k : 36 * (k + 1)], **kw))
        deadline = time.monotonic() + 5
        while "bed-9" not in monitor.ingest.streams and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        proc = monitor.ingest.streams["bed-9"]
        assert proc.stats.frames == 3 and not proc.stats.rejected
        push.close()
    finally:
        monitor.stop()
        thread.join(10)
        ctx.destroy(linger=0)
