"""Sinks write the device's own sample indices through their ``locate`` lookup, naming boot and segment."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import zmq

from engine import Beat, LabeledBeat
from monitor.alarms import AlarmEvent, Vitals
from monitor.outputs import (
    AlarmLog,
    AlarmLogSink,
    AlertBus,
    BusSink,
    LiveView,
    Located,
    LogLineSink,
    ViewSink,
    decode_message,
    format_message,
    stream_index,
)

FS = 250.0


def rebooted(stream: str, sample: int) -> Located:
    """Stream indices from 1000 are boot 2's own indices from 0 (label b2); before, boot 1's ("")."""
    if sample >= 1000:
        return Located(sample - 1000, "2", "b2", True)
    return Located(sample, "1", "", True)


def beat(sample: int) -> LabeledBeat:
    return LabeledBeat(Beat("bed.1", sample, FS, 0.8, None, None, None, np.zeros(8, np.float32), sample - 4, 0.0), "N")


def test_bus_and_log_carry_device_indices_and_their_index_space(
    ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path
) -> None:
    bus = AlertBus(ctx, "inproc://located-bus", monitor="m", clock=lambda: 5.0)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect("inproc://located-bus")
    sub.subscribe(b"")
    log = AlarmLog(tmp_path / "a.db", run_id="m")
    try:
        for _ in range(200):
            if bus.serve_subscriptions():
                break
            sub.poll(10)
        sink, log_sink = BusSink(bus, rebooted), AlarmLogSink(log, lambda: 7.0, rebooted)
        event = AlarmEvent("bed.1", "asystole", "onset", 900, 1500, FS, "Asystole")
        sink.on_beats([beat(400), beat(1200)], now=1.0)
        sink.on_alarm(event)
        log_sink.on_alarm(event)
        sink.on_vitals(Vitals("bed.1", 1250, FS, None, 0.0, "clean", ("asystole",)))
        got = [decode_message(sub.recv_multipart())[1] for _ in range(4)]
        rows = log.history()
    finally:
        sub.close(linger=0)
        bus.close()
        log.close()
    assert [(b["sample"], b["boot"], b["segment"]) for b in got[:2]] == [(400, "1", ""), (200, "2", "b2")]
    alarm = got[2]
    assert (alarm["onset_sample"], alarm["onset_boot"], alarm["onset_segment"]) == (900, "1", "")
    assert (alarm["sample"], alarm["boot"], alarm["segment"]) == (500, "2", "b2")
    assert alarm["alarm_id"] == event.alarm_id  # unique over the stream's life: the stream clock's onset
    assert (got[3]["sample"], got[3]["segment"]) == (250, "b2")
    assert "(boot 2, segment b2)" in format_message(got[0] | {"sample": 200, "boot": "2", "segment": "b2"})
    assert [(r["onset_sample"], r["sample"]) for r in rows] == [(900, 500)]
    assert rows[0]["details"] == {"boot": "2", "segment": "b2", "onset_boot": "1", "onset_segment": ""}


def test_without_a_second_segment_nothing_is_added(ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path) -> None:
    log = AlarmLog(tmp_path / "a.db", run_id="m")
    event = AlarmEvent("bed.1", "asystole", "onset", 900, 1500, FS, "Asystole", {"hr": 0.0})
    AlarmLogSink(log, lambda: 7.0).on_alarm(event)
    AlarmLogSink(log, lambda: 7.0, stream_index).on_alarm(event)
    rows = log.history(limit=None)
    log.close()
    assert [(r["onset_sample"], r["sample"], r["details"]) for r in rows] == [(900, 1500, {"hr": 0.0})] * 2


def test_view_and_log_lines_show_the_devices_clock(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    view = LiveView(out=out, interactive=False, beats=True)
    sink = ViewSink(view, rebooted)
    sink.on_beats([beat(1250)], now=0.0)
    sink.on_alarm(AlarmEvent("bed.1", "asystole", "onset", 1500, 2000, FS, "Asystole"))
    assert "at     1.000 s (sample 250 (boot 2, segment b2))" in out.getvalue()
    assert "Asystole at 2.0 s (boot 2, segment b2)" in out.getvalue()
    with caplog.at_level(logging.INFO, logger="monitor.alarms"):
        LogLineSink(rebooted).on_alarm(AlarmEvent("bed.1", "asystole", "onset", 1500, 2000, FS, "Asystole"))
        LogLineSink().on_alarm(AlarmEvent("bed.1", "asystole", "onset", 1500, 2000, FS, "Asystole"))
    assert [r.getMessage().split(" at ")[1] for r in caplog.records] == ["4.0 s (boot 2, segment b2)", "8.0 s"]
