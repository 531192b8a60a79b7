"""An alarm acknowledged at the central station: published on the bus and kept in the alarm log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import zmq

from monitor.app import Monitor, MonitorConfig, Source
from monitor.outputs import AlarmLog, acks_of
from monitor.protocol import decode_message
from monitor.testing import FakeClock


def test_an_acknowledgement_from_the_page_goes_on_the_bus_and_into_the_log(tmp_path: Path) -> None:
    path = tmp_path / "alarms.sqlite"
    config = MonitorConfig(alarm_log=path, alerts="inproc://ack-test", engine_thread=False)
    monitor = Monitor(Source(endpoint="inproc://unused"), config, clock=FakeClock())
    monitor._open_outputs()
    assert monitor.bus is not None
    sub = monitor._ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect("inproc://ack-test")
    sub.setsockopt(zmq.SUBSCRIBE, b"ack/")
    try:
        deadline = time.monotonic() + 5
        received = None
        while received is None and time.monotonic() < deadline:  # a subscription takes a moment to arrive
            monitor.acks.add({"id": "bed-1:vt:3600"}, "bed-1", "ann", 1700000000.0)  # from the web thread
            monitor.process()
            if sub.poll(100):
                received = sub.recv_multipart()
        assert received is not None
        topic, body = decode_message(received)
        assert topic == "ack/bed-1/" and (body["alarm_id"], body["by"], body["at"]) == ("bed-1:vt:3600", "ann", 1.7e9)
        assert json.loads(received[1])["monitor"] == monitor.id
    finally:
        sub.close()
        monitor._finish()
        monitor.bus.close()
        assert monitor.alarm_log is not None
        monitor.alarm_log.close()
    with AlarmLog.reader(path) as log:
        acks = acks_of(log, "bed-1:vt:3600")
    assert acks and all(a["by"] == "ann" and a["run_id"] == monitor.id for a in acks)
