from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.outputs import AlarmLog, AlarmLogError, default_path
from monitor.outputs._alarmlog import SCHEMA_VERSION

MONITOR_DIR = Path(__file__).resolve().parents[2] / "monitor"


def alarm(
    state: str = "onset",
    *,
    stream: str = "100",
    kind: str = "vtach",
    onset: int = 3600,
    sample: int | None = None,
    time: float = 1_700_000_000.0,
    priority: str = "high",
    end_reason: str | None = None,
    seq: int = 1,
) -> dict[str, Any]:
    """An alarm body as published on the bus."""
    return {
        "schema": 1,
        "type": "alarm",
        "seq": seq,
        "time": time,
        "monitor": "host-1-1700000000",
        "stream": stream,
        "alarm_id": f"{stream}:{kind}:{onset}",
        "kind": kind,
        "category": "technical" if kind in ("signal_lost", "leads_off") else "clinical",
        "priority": priority,
        "state": state,
        "snapshot": state == "active",
        "onset_sample": onset,
        "sample": onset if sample is None else sample,
        "fs": 360.0,
        "text": f"{kind} on {stream}",
        "details": {"hr": 182.0, "beats": 9},
        "end_reason": end_reason,
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "log" / "alarms.sqlite"


def test_wal_mode_schema_version_and_sync_level(path: Path) -> None:
    with AlarmLog(path, run_id="a") as log:
        assert log.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with AlarmLog(path, run_id="b", durable=True) as log:
        assert log.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"alarms_stream_time", "alarms_alarm_id", "alarms_episode"} <= indexes
        ended = conn.execute("SELECT run_id, pid FROM runs WHERE ended_at IS NOT NULL ORDER BY run_id").fetchall()
        assert ended == [("a", os.getpid()), ("b", os.getpid())]  # both registered, both closed cleanly
    finally:
        conn.close()


def test_transitions_are_stored_and_snapshots_are_not(path: Path) -> None:
    with AlarmLog(path, run_id="run-1") as log:
        log.record(alarm("onset"))
        log.record(alarm("active"))  # last-value-cache snapshot: the log already has the onset
        log.record(alarm("update", sample=4000, time=1_700_000_001.0))
        log.record(alarm("end", sample=5000, time=1_700_000_002.0, end_reason="condition cleared"))
        rows = log.history()
    assert [r["state"] for r in rows] == ["end", "update", "onset"]
    end = rows[0]
    assert end["run_id"] == "run-1"
    assert end["alarm_id"] == "100:vtach:3600"
    assert (end["onset_sample"], end["sample"], end["fs"]) == (3600, 5000, 360.0)
    assert end["end_reason"] == "condition cleared"
    assert end["details"] == {"beats": 9, "hr": 182.0}
    assert end["wall_time"] == 1_700_000_002.0
    assert end["logged_at"] > 1_700_000_000.0
    assert rows[2]["end_reason"] is None


def test_history_filters_and_newest_first(path: Path) -> None:
    with AlarmLog(path, run_id="r") as log:
        log.record(alarm(stream="100", kind="vtach", time=100.0))
        log.record(alarm(stream="101", kind="brady", priority="medium", time=200.0))
        log.record(alarm(stream="100", kind="signal_lost", priority="medium", time=300.0))
        log.record(alarm(stream="100", kind="vtach", onset=9000, time=400.0))
        log.record(alarm(stream="101", kind="afib", priority="low", time=150.0))  # logged late, older
        assert [r["wall_time"] for r in log.history()] == [400.0, 300.0, 200.0, 150.0, 100.0]
        assert [r["wall_time"] for r in log.history(stream="100")] == [400.0, 300.0, 100.0]
        assert [r["wall_time"] for r in log.history(kind="vtach")] == [400.0, 100.0]
        assert [r["wall_time"] for r in log.history(priority="medium")] == [300.0, 200.0]
        assert [r["wall_time"] for r in log.history(since=200.0)] == [400.0, 300.0, 200.0]
        assert [r["wall_time"] for r in log.history(since=150.0, until=300.0)] == [200.0, 150.0]
        assert [r["wall_time"] for r in log.history(limit=2)] == [400.0, 300.0]
        assert len(log.history(limit=None)) == 5
        assert log.history(stream="100", kind="brady") == []
        with pytest.raises(ValueError, match="limit"):
            log.history(limit=0)


def test_a_second_log_on_the_same_file_keeps_appending(path: Path) -> None:
    with AlarmLog(path, run_id="first") as log:
        log.record(alarm("onset", time=1.0))
    with AlarmLog(path, run_id="second") as log:
        log.record(alarm("onset", stream="101", time=2.0))
        rows = log.history()
        assert log.count() == 2
    assert [(r["run_id"], r["stream"]) for r in rows] == [("second", "101"), ("first", "100")]
    assert rows[0]["id"] > rows[1]["id"]


def test_reader_sees_committed_rows_while_the_writer_is_open(path: Path) -> None:
    writer = AlarmLog(path, run_id="w")
    try:
        writer.record(alarm("onset", time=1.0))
        reader = AlarmLog.reader(path)
        try:
            assert len(reader.history()) == 1
            writer.record(alarm("end", time=2.0, end_reason="condition cleared"))
            assert [r["state"] for r in reader.history()] == ["end", "onset"]
            with pytest.raises(AlarmLogError, match="read-only"):
                reader.record(alarm("onset", time=3.0))
        finally:
            reader.close()
    finally:
        writer.close()


def test_close_orphans_closes_only_earlier_runs_open_episodes(path: Path) -> None:
    with AlarmLog(path, run_id="old") as old:
        old.record(alarm("onset", kind="vtach", onset=100, time=1.0))  # left open
        old.record(alarm("onset", kind="brady", onset=200, priority="medium", time=2.0))
        old.record(alarm("update", kind="brady", onset=200, sample=300, priority="medium", time=3.0))  # left open
        old.record(alarm("onset", kind="afib", onset=400, priority="low", time=4.0))
        old.record(alarm("end", kind="afib", onset=400, sample=500, priority="low", time=5.0, end_reason="cleared"))
    with AlarmLog(path, run_id="new") as log:
        # the same episode id again in the new run (a replay of the same record): a separate episode
        log.record(alarm("onset", kind="vtach", onset=100, time=10.0))
        assert {(r["run_id"], r["kind"]) for r in log.open_alarms()} == {
            ("old", "vtach"),
            ("old", "brady"),
            ("new", "vtach"),
        }

        assert log.close_orphans("monitor restarted", wall_time=11.0) == 2
        assert [(r["run_id"], r["kind"]) for r in log.open_alarms()] == [("new", "vtach")]
        ends = log.history(since=11.0)
        reason = f"monitor restarted; run old (pid {os.getpid()} on {socket.gethostname()}) ended without closing it"
        assert {(r["run_id"], r["kind"], r["state"], r["end_reason"]) for r in ends} == {
            ("old", "vtach", "end", reason),
            ("old", "brady", "end", reason),
        }
        brady = next(r for r in ends if r["kind"] == "brady")
        assert (brady["sample"], brady["priority"], brady["alarm_id"]) == (300, "medium", "100:brady:200")
        assert log.close_orphans("monitor restarted", wall_time=12.0) == 0


def test_a_killed_process_keeps_every_committed_row(path: Path) -> None:
    messages = [
        alarm("onset", time=1.0),
        alarm("active", time=1.5),
        alarm("update", sample=4000, time=2.0),
        alarm("onset", stream="101", kind="brady", priority="medium", time=3.0),
        alarm("end", sample=5000, time=4.0, end_reason="condition cleared"),
    ]
    # The child puts a bare "monitor" package in place so that only the log module is imported
    # (the package __init__ pulls in the whole signal-processing stack and takes seconds).
    child = (
        "import json, os, signal, sys, types\n"
        "pkg = types.ModuleType('monitor'); pkg.__path__ = [sys.argv[1]]; sys.modules['monitor'] = pkg\n"
        "from monitor.outputs._alarmlog import AlarmLog\n"
        "log = AlarmLog(sys.argv[2], run_id='killed')\n"
        "for m in json.loads(sys.argv[3]):\n"
        "    log.record(m)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, str(MONITOR_DIR), str(path), json.dumps(messages)],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert path.with_name(path.name + "-wal").exists()  # the rows were still in the write-ahead log
    with AlarmLog(path, run_id="after") as log:
        rows = log.history()
        assert [(r["stream"], r["state"]) for r in rows] == [
            ("100", "end"),
            ("101", "onset"),
            ("100", "update"),
            ("100", "onset"),
        ]
        assert {r["run_id"] for r in rows} == {"killed"}
        assert [r["kind"] for r in log.open_alarms()] == ["brady"]


def test_a_file_that_is_not_a_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"these are not the alarms you are looking for\n" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database") as info:
        AlarmLog(path, run_id="r")
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match=str(path)):
        AlarmLog.reader(path)


def test_a_newer_schema_version_is_refused(path: Path) -> None:
    AlarmLog(path, run_id="r").close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this ecg-monitor") as info:
        AlarmLog(path, run_id="r")
    assert str(path) in str(info.value)


def test_another_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE patients (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="not an ecg-monitor alarm log"):
        AlarmLog(path, run_id="r")


def test_an_unusable_path_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not-a-folder"):
        AlarmLog(blocker / "alarms.sqlite", run_id="r")
    with pytest.raises(ConfigError, match="no such file"):
        AlarmLog.reader(tmp_path / "missing.sqlite")


def test_a_malformed_alarm_is_an_error_and_writes_nothing(path: Path) -> None:
    with AlarmLog(path, run_id="r") as log:
        body = alarm()
        del body["kind"]
        with pytest.raises(AlarmLogError, match="kind"):
            log.record(body)
        with pytest.raises(AlarmLogError, match="state"):
            log.record(dict(alarm(), state="paused"))
        assert log.count() == 0
    with pytest.raises(AlarmLogError, match="closed"):
        log.record(alarm())


def test_default_path_follows_xdg_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_path() == tmp_path / "data" / "ecg-monitor" / "alarms.sqlite"
    assert (tmp_path / "data" / "ecg-monitor").is_dir()
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path(create=False) == tmp_path / "home" / ".local" / "share" / "ecg-monitor" / "alarms.sqlite"
    assert not (tmp_path / "home").exists()
