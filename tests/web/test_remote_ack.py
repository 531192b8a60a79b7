"""An alarm acknowledged at a central station in another process (``ecg-central``): the station asks the monitor
that raised it, which keeps it in its alarm log and publishes it, so every page shows who acknowledged it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import zmq

from monitor.alarms import AlarmEvent
from monitor.app import Monitor, MonitorConfig, Source
from monitor.outputs import AlarmLog, AlertBus, acks_of
from monitor.testing import FakeClock
from monitor.web import Station


def _post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", "Origin": url.split("/api")[0]}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _pump(monitor: Monitor, until: Any, timeout: float = 10.0) -> Any:
    """Run the monitor's turns (its bus answers requests there) until ``until()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        monitor.process()
        got = until()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def monitor(tmp_path: Path) -> Any:
    config = MonitorConfig(alarm_log=tmp_path / "alarms.sqlite", alerts="tcp://127.0.0.1:*", engine_thread=False)
    mon = Monitor(Source(endpoint="inproc://unused"), config, clock=FakeClock())
    mon._open_outputs()
    yield mon
    mon._finish()
    assert mon.bus is not None and mon.alarm_log is not None
    mon.bus.close()
    mon.alarm_log.close()


def test_a_remote_station_acknowledges_through_the_monitor(monitor: Monitor, tmp_path: Path) -> None:
    bus = monitor.bus
    assert bus is not None
    station = Station([(bus.endpoint, bus.snapshot_endpoint)], "127.0.0.1", 0).start()
    try:
        bus.alarm(AlarmEvent("bed-1", "asystole", "onset", 1000, 1000, 250.0, "Asystole"))
        _pump(monitor, lambda: station.ward.active_alarm("bed-1", "bed-1:asystole:1000"))  # the snapshot brings it
        url = station.url + "api/ack"
        answers: list[tuple[int, str]] = []
        asks = [{"bed": "bed-1", "alarm_id": "bed-1:asystole:1000"}]
        worker = threading.Thread(target=lambda: answers.extend(_post(url, a) for a in asks))
        worker.start()
        _pump(monitor, lambda: answers)
        worker.join(10)
        assert answers[0][0] == 200, answers
        shown = _pump(monitor, lambda: station.ward.snapshot()["beds"][0]["alarms"][0]["acked"])
        assert shown["by"] == "local user"  # the monitor's ack message reached the station's ward
        monitor.process()
        assert monitor.alarm_log is not None
        with AlarmLog.reader(monitor.alarm_log.path) as log:
            assert [a["by"] for a in acks_of(log, "bed-1:asystole:1000")] == ["local user"]
        # an alarm the monitor no longer has: refused, and the page is told
        bus.alarm(AlarmEvent("bed-1", "asystole", "end", 1000, 3000, 250.0, "Asystole", end_reason="beats"))
        assert bus.take_acks() == []
        station.ward.apply("test", None, {"bed-1": [dict(_onset(bus), alarm_id="bed-1:asystole:1000")]})
        answers.clear()
        worker = threading.Thread(target=lambda: answers.extend(_post(url, a) for a in asks))
        worker.start()
        _pump(monitor, lambda: answers)
        worker.join(10)
        assert answers[0][0] == 502 and "not_active" in answers[0][1]
        assert bus.acks_refused["not_active"] == 1
    finally:
        station.close()


def _onset(bus: AlertBus) -> dict[str, Any]:
    return {
        "alarm_id": "x",
        "stream": "bed-1",
        "kind": "asystole",
        "category": "clinical",
        "priority": "high",
        "text": "Asystole",
        "onset_sample": 1000,
        "monitor": bus.monitor,
    }


def test_a_malformed_acknowledgement_is_refused_and_counted(monitor: Monitor) -> None:
    bus = monitor.bus
    assert bus is not None
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(bus.snapshot_endpoint)
    try:
        replies = []
        for frames in ([b"ack"], [b"ack", b"[1]"], [b"ack", b'{"stream": "a", "alarm_id": "b", "by": "c", "at": "x"}']):
            dealer.send_multipart(frames)
            replies.append(json.loads(_pump(monitor, lambda: dealer.poll(10) and dealer.recv_multipart())[1]))
    finally:
        dealer.close()
    assert [(r["ok"], r["error"]) for r in replies] == [(False, "request")] * 3
    assert bus.acks_refused["request"] == 3 and bus.take_acks() == []
