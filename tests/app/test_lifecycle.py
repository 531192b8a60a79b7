"""Stream lifecycle on the monitor's clock: silent devices are ended and forgotten, a stop ends every alarm,
and the cumulative figures never go back when streams are forgotten."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from engine import Beat
from monitor.alarms import AlarmEvent
from monitor.app import Monitor, MonitorConfig, Source
from monitor.errors import ConfigError
from monitor.observe import StatusSnapshot, attach
from monitor.outputs import AlarmLog, AlarmLogSink, AlertBus, BusSink
from monitor.testing import FakeClock, ecg, frames_of

FS = 250.0


class Failing:
    """An engine that always raises."""

    name = "failing"

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        raise RuntimeError("device lost")


def pause_signal(seed: int = 1) -> np.ndarray:
    """20 s of sinus rhythm, then 8 s without beats (low noise, not flat): asystole."""
    x, _ = ecg([0.8] * 24, FS, tail_s=0.6, seed=seed)
    rng = np.random.default_rng(seed + 1)
    pause = 0.03 * rng.standard_normal(round(8 * FS)) + 0.05 * np.sin(2 * np.pi * 0.3 * np.arange(8 * FS) / FS)
    return np.concatenate((x, pause))


def make(clock: FakeClock, engine: Any = None, **settings: Any) -> Monitor:
    config = MonitorConfig(alarm_log=None, engine_thread=False, **settings)
    return Monitor(Source(endpoint="inproc://unused"), config, classifier=engine, clock=clock, record_alarms=True)


def feed(monitor: Monitor, clock: FakeClock, messages: list[list[bytes]], per_turn: int = 40) -> None:
    """Deliver ``messages`` in turns of the loop, the clock moving on by a second each turn."""
    for i in range(0, len(messages), per_turn):
        monitor.process(messages[i : i + per_turn])
        clock.advance(1.0)
    monitor.process()


def ends(monitor: Monitor, stream: str) -> dict[str, AlarmEvent]:
    return {e.kind: e for e in monitor.alarm_events if e.stream == stream and e.state == "end"}


def onsets(monitor: Monitor, stream: str) -> set[str]:
    return {e.kind for e in monitor.alarm_events if e.stream == stream and e.state == "onset"}


def open_alarms(monitor: Monitor) -> dict[str, int]:
    """Alarm kinds whose onsets outnumber their ends, by stream and kind (empty: none left open)."""
    balance: dict[str, int] = {}
    for e in monitor.alarm_events:
        key = f"{e.stream}/{e.kind}"
        balance[key] = balance.get(key, 0) + {"onset": 1, "end": -1}.get(e.state, 0)
    return {k: n for k, n in balance.items() if n}


def test_a_silent_live_stream_is_ended_with_its_alarms_then_forgotten() -> None:
    clock = FakeClock(1000.0)
    monitor = make(clock, silence_s=5.0, stream_timeout_s=600.0, retain_ended_s=60.0)
    feed(monitor, clock, frames_of(pause_signal(), FS, stream="bed-1", chunk=25, eos=False))
    clock.advance(10)  # the device says nothing more
    monitor.process()
    assert {"asystole", "signal_lost"} <= onsets(monitor, "bed-1")
    state = monitor.streams["bed-1"]
    assert {"asystole", "signal_lost"} <= set(state.alarms.active)
    assert monitor.snapshot().streams_by_state()["active"] == 1

    clock.advance(580)  # 590 s of silence: still live
    monitor.process()
    assert not monitor.ingest.streams["bed-1"].stats.ended

    clock.advance(20)  # 610 s: ended, every alarm with the stated reason
    monitor.process()
    proc = monitor.ingest.streams["bed-1"]
    assert proc.stats.ended and state.finished and not state.alarms.active
    closed = ends(monitor, "bed-1")
    for kind in ("asystole", "signal_lost"):
        assert closed[kind].end_reason == "device silent for 600 s", closed[kind]
    assert not open_alarms(monitor)
    assert monitor.snapshot().streams_by_state() == {"active": 0, "ended": 1, "failed": 0}
    assert monitor.labels.labeled == proc.stats.beats > 20  # its last beats were labelled too

    clock.advance(29)
    monitor.process()
    assert "bed-1" in monitor.ingest.streams  # kept a while after its end
    clock.advance(40)
    monitor.process()
    assert "bed-1" not in monitor.ingest.streams and monitor.streams.forgotten == 1
    assert monitor.snapshot().streams_by_state() == {"active": 0, "ended": 0, "failed": 0}


def test_a_stream_that_never_sent_valid_data_is_ended_when_silent() -> None:
    clock = FakeClock()
    monitor = make(clock, silence_s=5.0, stream_timeout_s=30.0, retain_ended_s=1.0)
    bad = frames_of(np.zeros(25), FS, stream="bed-2", seq=5, start=0, eos=False)  # accepted, then nothing valid
    monitor.process(bad)
    assert "bed-2" in monitor.ingest.streams
    clock.advance(31)
    monitor.process()
    assert monitor.ingest.streams["bed-2"].stats.ended
    clock.advance(2)
    monitor.process()
    assert "bed-2" not in monitor.ingest.streams


def test_the_stream_timeout_is_checked() -> None:
    with pytest.raises(ConfigError, match="stream_timeout_s"):
        MonitorConfig(stream_timeout_s=0)
    with pytest.raises(ConfigError, match="at least silence_s"):
        MonitorConfig(silence_s=10.0, stream_timeout_s=5.0)
    assert MonitorConfig().stream_timeout_s == 600.0


def test_stop_ends_every_active_alarm_technical_ones_included(
    ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    clock = FakeClock()
    monitor = make(clock, Failing(), silence_s=5.0)
    log = AlarmLog(tmp_path / "alarms.db", run_id=monitor.id)
    bus = AlertBus(ctx, "inproc://lifecycle-bus", monitor=monitor.id)
    monitor.add_sink(AlarmLogSink(log))
    monitor.add_sink(BusSink(bus))
    feed(monitor, clock, frames_of(pause_signal(), FS, stream="bed-3", chunk=25, eos=False))
    feed(monitor, clock, frames_of(pause_signal(seed=5)[: round(10 * FS)], FS, stream="bed-4", chunk=25, eos=False))
    clock.advance(6)  # bed-3 silent; bed-4 goes on
    monitor.process(frames_of(np.zeros(25), FS, stream="bed-4", seq=400, start=10_000, eos=False))
    assert {"asystole", "signal_lost", "engine_failed"} <= onsets(monitor, "bed-3")
    assert "engine_failed" in onsets(monitor, "bed-4")
    assert bus.active_alarms >= 4 and len(AlarmLog.reader(log.path).open_alarms()) >= 4

    monitor.stop()  # as on SIGTERM: run() finds the stop set and shuts down at once
    assert monitor.run() == 0
    assert not open_alarms(monitor)
    assert bus.active_alarms == 0
    reader = AlarmLog.reader(log.path)
    assert reader.open_alarms() == []
    reasons = {e.kind: e.end_reason for e in monitor.alarm_events if e.stream == "bed-3" and e.state == "end"}
    assert reasons["asystole"] == reasons["signal_lost"] == reasons["engine_failed"] == "monitor stopped"
    reader.close()


def totals(snap: StatusSnapshot) -> dict[str, Any]:
    status = snap.to_status()
    return {k: status[k] for k in ("frames", "samples", "beats", "rejected", "samples_missing", "device_restarts")}


def grew(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Every figure of ``after`` at least that of ``before`` (rejections reason by reason)."""
    for k, v in before.items():
        if isinstance(v, dict):
            if any(after[k].get(r, 0) < n for r, n in v.items()):
                return False
        elif after[k] < v:
            return False
    return True


def test_cumulative_figures_never_go_back_when_streams_are_forgotten() -> None:
    clock = FakeClock()
    monitor = make(clock, retain_ended_s=5.0)
    reg = attach(monitor, process=False)  # type: ignore[arg-type]
    x, _ = ecg([0.8] * 20, FS)
    history: list[dict[str, Any]] = []
    counters = ("ecg_monitor_beats_total", "ecg_monitor_frames_total", "ecg_monitor_frames_rejected_total")
    scraped: list[dict[str, float]] = []

    def observe() -> None:
        history.append(totals(monitor.snapshot()))
        scraped.append(
            {n: reg.get_sample_value(n, {"reason": "duplicate"} if "rejected" in n else {}) or 0 for n in counters}
        )

    for round_ in range(3):
        for sid in ("bed-a", "bed-b"):  # the same ids each round: forgotten, then new streams
            messages = frames_of(x, FS, stream=sid, chunk=25)
            messages.insert(10, messages[9])  # a duplicate: rejected
            feed(monitor, clock, messages)
            observe()
        clock.advance(10)
        monitor.process()  # both forgotten now
        clock.advance(1)
        monitor.process()
        assert monitor.streams.forgotten == 2 * (round_ + 1)
        assert not monitor.ingest.streams
        observe()
    for before, after in itertools.pairwise(history):
        assert grew(before, after), (before, after)
    for before, after in itertools.pairwise(scraped):
        assert all(after[n] >= before[n] for n in counters), (before, after)
    final = history[-1]
    per_round = history[1]  # after both streams of the first round
    assert final["beats"] == 3 * per_round["beats"] > 0
    assert final["frames"] == 3 * per_round["frames"]
    assert final["rejected"]["duplicate"] == 6
    snap = monitor.snapshot()
    assert snap.streams_forgotten == 6 and snap.beats == monitor.labels.labeled
    assert reg.get_sample_value("ecg_monitor_streams_forgotten_total") == 6
