"""Alarms through the whole monitor: alert bus, snapshots, bridge, alarm log and rhythm annotations."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wfdb
import zmq

from monitor.alarms import AlarmEvent, Vitals
from monitor.app import Monitor, MonitorConfig, parse_source
from monitor.outputs import AlarmLog, AlertBridge, AlertBus, check_body
from monitor.testing import VitalsRecorder, ecg, write_record
from replay._publisher import ReplayConfig

FS = 250.0


RHYTHM_TOML = Path(__file__).parents[2] / "monitor" / "alarms" / "rhythm.toml"


def recv(sock: zmq.Socket[bytes], timeout_ms: int = 2000) -> list[bytes] | None:
    if sock.poll(timeout_ms, zmq.POLLIN):
        return sock.recv_multipart()
    return None


def asystole_record(tmp_path: Path) -> Path:
    """20 s of sinus rhythm at 75 bpm, 8 s without beats (low noise, not flat), then 12 s of sinus rhythm."""
    x1, _ = ecg([0.8] * 24, FS, tail_s=0.6, seed=1)
    pause = 0.03 * np.random.default_rng(2).standard_normal(round(8 * FS)) + 0.05 * np.sin(
        2 * np.pi * 0.3 * np.arange(round(8 * FS)) / FS
    )
    x2, _ = ecg([0.8] * 14, FS, start_s=0.2, seed=3)
    return write_record(tmp_path / "rec", "asys", np.concatenate((x1, pause, x2)), FS)


# ------------------------------------------------------------------ the bus alone
def test_every_alarm_kind_the_monitor_raises_is_known_to_the_bridge() -> None:
    from monitor.detect._quality import _ALARM_OF
    from monitor.outputs import ALARM_KINDS as BRIDGE_KINDS
    from monitor.vocabulary import CLINICAL_KINDS, TECHNICAL_KINDS

    assert set(BRIDGE_KINDS) == set(CLINICAL_KINDS) | set(TECHNICAL_KINDS)
    assert {k.replace(" ", "_") for k in _ALARM_OF.values()} <= set(TECHNICAL_KINDS)


def test_bus_messages_follow_the_schema_and_late_subscribers_get_active_alarms(
    ctx: zmq.Context[zmq.Socket[bytes]],
) -> None:
    bus = AlertBus(ctx, "inproc://bus-test", monitor="m1", clock=lambda: 1000.0)
    early = ctx.socket(zmq.SUB)
    early.setsockopt(zmq.LINGER, 0)
    early.connect("inproc://bus-test")
    early.subscribe(b"alarm/")
    assert bus.serve_subscriptions() == 0 or True
    onset = AlarmEvent("bed-1", "vtach", "onset", 1000, 1500, FS, "VT 180 bpm", {"hr": 180.0, "beats": 6})
    bus.alarm(onset)
    bus.alarm(AlarmEvent("bed-2", "couplet", "onset", 10, 20, FS, "Couplet", {"beats": 2}))
    bus.alarm(AlarmEvent("bed-2", "couplet", "end", 10, 30, FS, "Couplet", {"beats": 2}, "condition cleared"))
    bus.vitals(Vitals("bed-1", 1750, FS, 180.0, 6.0, "clean", ("vtach",)))
    bus.status({"uptime_s": 1.0, "streams": 2, "streams_active": 2, "messages": 3, "rejected": {}, "beats": 9,
                "labelled": 9, "late": 0, "shed": 0, "alarms_active": 1, "engine": "cnn/cpu", "health": "ok",
                "problems": []})  # fmt: skip
    got = [recv(early) for _ in range(3)]
    bodies = [json.loads(p[1]) for p in got if p is not None]
    assert [b["seq"] for b in bodies] == [1, 1, 2]  # per topic
    assert [p[0] for p in got if p] == [b"alarm/bed-1/", b"alarm/bed-2/", b"alarm/bed-2/"]
    for b in bodies:
        check_body(b)
        assert b["schema"] == 1 and b["monitor"] == "m1"
    assert bodies[0]["alarm_id"] == "bed-1:vtach:1000" and bodies[0]["priority"] == "high"
    # a bridge joining now asks the snapshot endpoint: it learns of the VT still active, not of the couplet
    # that ended, and the early subscriber sees nothing of it
    late = ctx.socket(zmq.DEALER)
    late.setsockopt(zmq.LINGER, 0)
    late.connect(bus.snapshot_endpoint)
    late.send_multipart(AlertBridge.snapshot_request(["alarm/bed-"]))
    for _ in range(50):
        bus.serve_subscriptions()
        if late.poll(10, zmq.POLLIN):
            break
    snap = recv(late)
    assert snap is not None and len(snap) == 4
    body = check_body(json.loads(snap[3]))
    assert body["state"] == "active" and body["snapshot"] is True and body["alarm_id"] == "bed-1:vtach:1000"
    assert body["seq"] == 1  # the seq of its topic when the snapshot was taken
    assert recv(early, 200) is None
    bridge = AlertBridge()
    events = bridge.apply_snapshot(snap)
    assert [e.body["alarm_id"] for e in events if e.body is not None] == ["bed-1:vtach:1000"]
    assert [a["alarm_id"] for a in bridge.active_alarms()] == ["bed-1:vtach:1000"]
    early.close()
    late.close()
    bus.close()


# ------------------------------------------------------------------ the whole monitor
def run_monitor(source_path: Path, **kw: Any) -> tuple[Monitor, VitalsRecorder]:
    source = parse_source(f"replay:{source_path}")
    config = MonitorConfig(replay=ReplayConfig(speed=None), **kw)
    view = VitalsRecorder()
    monitor = Monitor(source, config, lockstep=True, record_alarms=True)
    monitor.add_sink(view)
    assert monitor.run() == 0
    return monitor, view


def test_asystole_alarm_reaches_bridge_log_and_annotations(tmp_path: Path) -> None:
    path = asystole_record(tmp_path)
    log_path = tmp_path / "alarms.sqlite"
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        source = parse_source(f"replay:{path}")
        config = MonitorConfig(
            replay=ReplayConfig(speed=4.0),
            alerts="tcp://127.0.0.1:*",
            alarm_log=log_path,
            annotations=tmp_path / "ann",
        )
        monitor = Monitor(source, config, context=ctx, record_alarms=True)
        # the replay starts once the bus is bound; connect the bridge before the pause comes (at 5 s wall)
        thread = threading.Thread(target=monitor.run)
        thread.start()
        assert monitor.ready.wait(5)
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        assert monitor.alerts_endpoint is not None
        sub.connect(monitor.alerts_endpoint)
        sub.subscribe(b"alarm/")
        sub.subscribe(b"vitals/")
        bridge = AlertBridge()
        alarms: list[dict[str, Any]] = []
        vitals: list[dict[str, Any]] = []
        while thread.is_alive() or sub.poll(0):
            parts = recv(sub, 500)
            if parts is None:
                continue
            event = bridge.handle(parts)
            assert event is not None and event.error is None, event
            if event.body is not None:
                (alarms if event.body["type"] == "alarm" else vitals).append(event.body)
        thread.join(10)
        sub.close()
    finally:
        ctx.destroy(linger=0)
    asys = [a for a in alarms if a["kind"] == "asystole"]
    assert [a["state"] for a in asys][:1] == ["onset"] and asys[-1]["state"] == "end"
    onset_s = asys[0]["onset_sample"] / FS
    assert 19.0 <= onset_s <= 20.5  # the last beat before the pause
    assert vitals and min(v["hr"] for v in vitals if v["hr"] is not None) == 0.0
    assert bridge.stats.gaps == 0
    # the log holds the same transitions
    with AlarmLog.reader(log_path) as logged:
        rows = logged.history(kind="asystole", limit=None)
    assert sorted(r["state"] for r in rows) == sorted(a["state"] for a in asys if a["state"] != "active")
    # and the annotation file has the episode as rhythm annotations
    ann = wfdb.rdann(str(tmp_path / "ann" / "asys"), "mon")
    rhythm = [a.rstrip("\x00") for sym, a in zip(ann.symbol, ann.aux_note, strict=True) if sym == "+"]
    assert rhythm == ["(ASYS", "(N"]


def test_restarted_monitor_keeps_appending_to_the_log(tmp_path: Path) -> None:
    path = asystole_record(tmp_path)
    log_path = tmp_path / "alarms.sqlite"
    for _ in range(2):
        run_monitor(path, alarm_log=log_path)
    with AlarmLog.reader(log_path) as logged:
        rows = logged.history(kind="asystole", limit=None)
        runs = {r["run_id"] for r in rows}
    assert len(rows) >= 4 and len(runs) == 2


def test_alarm_log_closes_what_a_killed_run_left_open(tmp_path: Path) -> None:
    log_path = tmp_path / "alarms.sqlite"
    with AlarmLog(log_path, run_id="killed-run") as first:
        first.record(
            {
                "alarm_id": "bed:vfib:10", "stream": "bed", "kind": "vfib", "category": "clinical",
                "priority": "high", "state": "onset", "onset_sample": 10, "sample": 20, "fs": FS,
                "text": "VF/VFL", "details": {}, "end_reason": None, "time": 1.0,
            }
        )  # fmt: skip
    path = asystole_record(tmp_path)
    run_monitor(path, alarm_log=log_path)
    with AlarmLog.reader(log_path) as logged:
        assert logged.open_alarms() == []
        ends = [r for r in logged.history(kind="vfib", limit=None) if r["state"] == "end"]
    assert ends and "restarted" in ends[0]["end_reason"]


def test_heart_rate_every_second_in_sample_time(tmp_path: Path) -> None:
    monitor, view = run_monitor(asystole_record(tmp_path))
    samples = [v.sample for v in view.vitals]
    assert samples == sorted(samples) and np.all(np.diff(samples) == round(FS))
    hr = {round(v.sample / FS): v.hr for v in view.vitals}
    assert hr[15] == pytest.approx(75, abs=2)
    on = [e for e in monitor.alarm_events if e.kind == "asystole" and e.state == "onset"]
    assert len(on) == 1


def test_cli_runs_alarms_with_bus_log_metrics_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli._monitor import main

    path = asystole_record(tmp_path)
    code = main(
        [
            "--source", f"replay:{path}", "--speed", "max", "--view", "plain",
            "--alerts", "tcp://127.0.0.1:*", "--alarm-log", str(tmp_path / "log.sqlite"),
            "--metrics", "127.0.0.1:0", "--rhythm-config", str(RHYTHM_TOML),
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ALARM HIGH Asystole" in out
    assert "metrics on http://127.0.0.1:" in err
    with AlarmLog.reader(tmp_path / "log.sqlite") as logged:
        assert [r["state"] for r in logged.history(kind="asystole", limit=None)] == ["end", "onset"]
    bad = tmp_path / "bad.toml"
    bad.write_text("asystole = 4\n")
    assert main(["--source", f"replay:{path}", "--rhythm-config", str(bad), "--alarm-log", "off"]) == 2
    assert "unknown setting 'asystole'" in capsys.readouterr().err
