"""Monitors sharing one alarm log close only the episodes of runs that are over, and an episode ends once."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.app import Monitor, MonitorConfig, Source
from monitor.outputs import AlarmLog, AlarmLogSink
from monitor.outputs._alarmlog import SCHEMA_VERSION
from monitor.testing import FakeClock, ecg, frames_of
from tests.outputs.test_alarmlog import MONITOR_DIR, alarm

HOST = socket.gethostname()
PID = os.getpid()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "alarms.sqlite"


def ends(log: AlarmLog, alarm_id: str) -> list[dict[str, Any]]:
    return [r for r in log.history(limit=None) if r["alarm_id"] == alarm_id and r["state"] == "end"]


def dead_pid() -> int:
    """The id of a process that has exited."""
    with subprocess.Popen([sys.executable, "-c", "pass"]) as proc:
        assert proc.wait(timeout=30) == 0
    return proc.pid


def set_run(path: Path, run_id: str, **values: Any) -> None:
    """Change a registered run's row, as another host or an earlier boot would have written it."""
    conn = sqlite3.connect(path)
    try:
        assignments = ", ".join(f"{k} = ?" for k in values)
        assert conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values.values(), run_id)).rowcount
        conn.commit()
    finally:
        conn.close()


def test_two_live_writers_never_close_each_others_episodes(path: Path) -> None:
    with AlarmLog(path, run_id="a") as a, AlarmLog(path, run_id="b") as b:
        a.record(alarm("onset", stream="bed-1", time=1.0))
        b.record(alarm("onset", stream="bed-2", time=2.0))
        assert a.close_orphans("monitor restarted", wall_time=3.0) == 0
        assert b.close_orphans("monitor restarted", wall_time=3.0) == 0
        assert {(r["run_id"], r["stream"]) for r in b.open_alarms()} == {("a", "bed-1"), ("b", "bed-2")}
        runs = {r["run_id"]: r for r in b.runs()}
        assert {k: (r["host"], r["pid"], r["ended_at"]) for k, r in runs.items()} == {
            "a": (HOST, PID, None),
            "b": (HOST, PID, None),
        }
        a.record(alarm("end", stream="bed-1", time=4.0, end_reason="condition cleared"))
        assert [r["end_reason"] for r in ends(b, "bed-1:vtach:3600")] == ["condition cleared"]
    with AlarmLog.reader(path) as reader:
        assert all(r["ended_at"] is not None for r in reader.runs())  # both closed cleanly


def test_a_killed_writer_is_closed_by_the_next_monitor_naming_the_run(path: Path) -> None:
    live = AlarmLog(path, run_id="live")
    live.record(alarm("onset", stream="bed-1", time=1.0))
    child = (
        "import json, os, signal, sys, types\n"
        "pkg = types.ModuleType('monitor'); pkg.__path__ = [sys.argv[1]]; sys.modules['monitor'] = pkg\n"
        "from monitor.outputs._alarmlog import AlarmLog\n"
        "log = AlarmLog(sys.argv[2], run_id='killed')\n"
        "log.record(json.loads(sys.argv[3]))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    body = alarm("onset", stream="bed-9", kind="brady", priority="medium", time=2.0)
    argv = [sys.executable, "-c", child, str(MONITOR_DIR), str(path), json.dumps(body)]
    with subprocess.Popen(argv, stderr=subprocess.PIPE) as proc:
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()
    try:
        with AlarmLog(path, run_id="next") as log:
            assert log.close_orphans("monitor restarted", wall_time=5.0) == 1
            [end] = ends(log, "bed-9:brady:3600")
            assert end["run_id"] == "killed"
            assert end["end_reason"] == f"monitor restarted; run killed (pid {proc.pid} on {HOST}) is no longer running"
            assert (end["wall_time"], end["priority"]) == (5.0, "medium")
            assert [r["run_id"] for r in log.open_alarms()] == ["live"]  # the live writer keeps its episode
            assert log.close_orphans("monitor restarted", wall_time=6.0) == 0
    finally:
        live.close()


def test_a_run_that_closed_cleanly_but_left_an_episode_open_is_over(path: Path) -> None:
    with AlarmLog(path, run_id="quit") as quit_:
        quit_.record(alarm("onset", time=1.0))
    with AlarmLog(path, run_id="next") as log:
        assert log.close_orphans("monitor restarted", wall_time=2.0) == 1
        assert ends(log, "100:vtach:3600")[0]["end_reason"].endswith(
            f"run quit (pid {PID} on {HOST}) ended without closing it"
        )


def test_another_hosts_run_is_over_only_once_its_heartbeat_is_stale(path: Path) -> None:
    with AlarmLog(path, run_id="far", heartbeat_s=None) as far, AlarmLog(path, run_id="near") as near:
        far.record(alarm("onset", time=1.0))
        set_run(path, "far", host="elsewhere", heartbeat=time.time() - 30)
        assert near.close_orphans("monitor restarted", wall_time=2.0) == 0  # heard from 30 s ago: live
        assert near.close_orphans("monitor restarted", wall_time=2.0, stale_s=10.0) == 1
        [end] = ends(near, "100:vtach:3600")
        assert end["end_reason"].startswith(
            f"monitor restarted; run far (pid {PID} on elsewhere) has sent no heartbeat"
        )


def test_a_run_from_before_a_reboot_of_this_host_is_over(path: Path) -> None:
    with AlarmLog(path, run_id="before", heartbeat_s=None) as before, AlarmLog(path, run_id="after") as after:
        before.record(alarm("onset", time=1.0))
        if not after.runs()[0]["boot_id"]:
            pytest.skip("this host has no boot id")
        set_run(path, "before", boot_id="an-earlier-boot")  # its pid (ours) is alive, but on another boot
        assert after.close_orphans("monitor restarted", wall_time=2.0) == 1
        assert "was stopped by a restart of the host" in ends(after, "100:vtach:3600")[0]["end_reason"]


def test_an_episode_ends_once_whoever_writes_the_second_end(path: Path) -> None:
    with AlarmLog(path, run_id="slow", heartbeat_s=None) as slow, AlarmLog(path, run_id="next") as other:
        slow.record(alarm("onset", time=1.0))
        set_run(path, "slow", host="elsewhere", heartbeat=time.time() - 600)  # judged over, but it comes back
        assert other.close_orphans("monitor restarted", wall_time=2.0) == 1
        assert slow.record(alarm("update", sample=4000, time=3.0)) is False
        assert slow.record(alarm("end", sample=5000, time=4.0, end_reason="condition cleared")) is False
        assert slow.ignored == 2
        assert [r["state"] for r in other.history()] == ["end", "onset"]
        assert other.open_alarms() == []
        # a writer without the check (an ecg-monitor of schema version 1) is stopped by the file itself
        raw = sqlite3.connect(path)
        columns = ", ".join(c for c in ("run_id", "alarm_id", "stream", "kind", "category", "priority", "state"))
        values = ("slow", "100:vtach:3600", "100", "vtach", "clinical", "high", "end")
        raw.execute(
            f"INSERT INTO alarms ({columns}, onset_sample, sample, fs, text, wall_time, logged_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 3600, 5000, 360.0, 'x', 5.0, 5.0)",
            values,
        )
        raw.commit()
        raw.close()
        assert len(ends(other, "100:vtach:3600")) == 1
        # the same alarm id again (a looped replay) is a new episode, with its own end
        assert slow.record(alarm("onset", time=6.0)) is True
        assert slow.record(alarm("end", time=7.0, end_reason="condition cleared")) is True
        assert len(ends(other, "100:vtach:3600")) == 2


def test_the_heartbeat_thread_keeps_a_quiet_run_alive(path: Path) -> None:
    with AlarmLog(path, run_id="quiet", heartbeat_s=0.02) as log:
        first = log.runs()[0]["heartbeat"]
        deadline = time.monotonic() + 10
        while log.runs()[0]["heartbeat"] == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.runs()[0]["heartbeat"] > first
    with AlarmLog.reader(path) as reader:
        [run] = reader.runs()
        assert run["ended_at"] is not None and run["heartbeat"] == run["ended_at"]


def write_version_1(path: Path, rows: list[tuple[str, str]]) -> None:
    """A log as an ecg-monitor of schema version 1 wrote it: (run_id, stream) onsets, left open."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE alarms (
            id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, alarm_id TEXT NOT NULL, stream TEXT NOT NULL,
            kind TEXT NOT NULL, category TEXT NOT NULL, priority TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('onset', 'update', 'end')),
            onset_sample INTEGER NOT NULL, sample INTEGER NOT NULL, fs REAL NOT NULL, text TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}', end_reason TEXT, wall_time REAL NOT NULL, logged_at REAL NOT NULL
        );
        CREATE INDEX alarms_stream_time ON alarms (stream, wall_time);
        CREATE INDEX alarms_alarm_id ON alarms (alarm_id);
        CREATE INDEX alarms_time ON alarms (wall_time);
        PRAGMA user_version = 1;
        """
    )
    for run_id, stream in rows:
        conn.execute(
            "INSERT INTO alarms (run_id, alarm_id, stream, kind, category, priority, state, onset_sample, sample,"
            " fs, text, wall_time, logged_at) VALUES (?, ?, ?, 'vtach', 'clinical', 'high', 'onset', 1, 1, 360.0,"
            " 'VT', 1.0, 1.0)",
            (run_id, f"{stream}:vtach:1", stream),
        )
    conn.commit()
    conn.close()


def test_a_version_1_log_is_read_as_it_is_and_migrated_by_a_writer(path: Path) -> None:
    gone = f"{HOST}-{dead_pid()}-1700000000-abc123"
    running = f"{HOST}-{PID}-1700000000-def456"  # a version-1 monitor still running in this process
    write_version_1(path, [(gone, "bed-1"), (running, "bed-2"), ("far-host-7-1700000000-0a0b0c", "bed-3")])
    with AlarmLog.reader(path) as reader:
        assert len(reader.open_alarms()) == 3 and reader.runs() == []
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1  # a reader changes nothing

    with AlarmLog(path, run_id="new") as log:
        assert log.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert [r["run_id"] for r in log.runs()] == ["new"]
        assert log.count() == 3
        assert log.close_orphans("monitor restarted", wall_time=2.0) == 2
        assert [r["run_id"] for r in log.open_alarms()] == [running]
        reasons = {r["stream"]: r["end_reason"] for r in log.history() if r["state"] == "end"}
        assert reasons == {
            "bed-1": f"monitor restarted; run {gone} (not registered: an earlier ecg-monitor) left it open",
            "bed-3": "monitor restarted; run far-host-7-1700000000-0a0b0c (not registered: an earlier ecg-monitor)"
            " left it open",
        }
    with AlarmLog(path, run_id="again"):  # already up to date: opens as it is
        pass


def asystole() -> np.ndarray:
    """20 s of sinus rhythm, then 8 s without beats: an asystole alarm."""
    x, _ = ecg([0.8] * 24, 250.0, tail_s=0.6, seed=1)
    rng = np.random.default_rng(2)
    return np.concatenate((x, 0.03 * rng.standard_normal(2000)))


def test_a_monitor_starting_on_a_shared_log_leaves_a_running_monitors_alarms_open(path: Path) -> None:
    clock = FakeClock()
    first = Monitor(
        Source(endpoint="inproc://shared-log-first"),
        MonitorConfig(alarm_log=None, engine_thread=False, silence_s=5.0),
        clock=clock,
        record_alarms=True,
    )
    first.add_sink(AlarmLogSink(AlarmLog(path, run_id=first.id)))
    messages = frames_of(asystole(), 250.0, stream="bed-1", chunk=25, eos=False)
    for i in range(0, len(messages), 40):
        first.process(messages[i : i + 40])
        clock.advance(1.0)
    with AlarmLog.reader(path) as reader:
        opened = {r["alarm_id"] for r in reader.open_alarms()}
    assert opened and all(a.startswith("bed-1:") for a in opened)

    second = Monitor(Source(endpoint="inproc://shared-log-second"), MonitorConfig(alarm_log=path))
    second.stop()  # starts, opens the log (closing what runs that are over left open), stops at once
    assert second.run() == 0
    with AlarmLog.reader(path) as reader:
        assert {r["alarm_id"] for r in reader.open_alarms()} == opened
        assert {r["run_id"] for r in reader.runs()} == {first.id, second.id}

    first.stop()
    assert first.run() == 0  # ends every alarm: "monitor stopped", written once
    with AlarmLog.reader(path) as reader:
        assert reader.open_alarms() == []
        done = [r for r in reader.history(limit=None) if r["state"] == "end" and r["alarm_id"] in opened]
        assert sorted(r["alarm_id"] for r in done) == sorted(opened)  # one end each
        assert {r["end_reason"] for r in done} == {"monitor stopped"}
