"""The bedside bridge (``AlertBridge`` and its output) and the ``ecg-alerts`` command line."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from monitor.cli._alerts import main, parse_time
from monitor.outputs import AlarmLog, AlertBridge, CommandRunner, format_message
from tests.protocol.test_messages import EXAMPLES, alarm, frames

# --- rejected messages -------------------------------------------------------------------------------------


def test_invalid_messages_are_counted_and_do_not_stop_the_bridge() -> None:
    bridge = AlertBridge()
    bad = bridge.handle([b"alarm/100/", b"{"])
    assert bad is not None and bad.error is not None and bad.error.reason == "json"
    assert bad.body is None
    assert bridge.handle([b"junk"]) is not None
    good = bridge.handle(frames(alarm()))
    assert good is not None and good.body is not None and good.error is None
    assert bridge.stats.rejected == {"json": 1, "frames": 1}
    assert bridge.stats.received == 3 and bridge.stats.alarms == 1


# --- sequence gaps, snapshots, the active table -----------------------------------------------------------------


def test_gaps_are_counted_per_topic() -> None:
    bridge = AlertBridge()
    first = bridge.handle(frames(alarm(seq=41)))  # joined mid-stream: no gap
    assert first is not None and first.missed == 0 and first.notes == ()
    nxt = bridge.handle(frames(alarm("update", seq=42)))
    assert nxt is not None and nxt.missed == 0
    # another topic has its own numbering
    other = bridge.handle(frames(alarm(seq=7, stream="101")))
    assert other is not None and other.missed == 0
    gap = bridge.handle(frames(alarm("update", seq=45)))
    assert gap is not None and gap.missed == 2
    assert gap.notes == ("missed 2 messages on alarm/100/",)
    one = bridge.handle(frames(alarm("update", seq=9, stream="101")))
    assert one is not None and one.notes == ("missed 1 message on alarm/101/",)
    back = bridge.handle(frames(alarm("update", seq=3)))
    assert back is not None and back.missed == 0 and "went back" in back.notes[0]
    assert (bridge.stats.missed, bridge.stats.gaps, bridge.stats.seq_resets) == (3, 2, 1)


def test_active_bodies_of_known_alarms_are_not_shown_again() -> None:
    bridge = AlertBridge()
    onset = bridge.handle(frames(alarm("onset", seq=1)))
    assert onset is not None and onset.body is not None and onset.is_alarm
    # an active body on the bus (an older monitor's last-value cache) of an alarm already shown
    assert bridge.handle(frames(alarm("active", seq=2, text="VT 190 bpm"))) is None
    assert bridge.active_alarms("100")[0]["text"] == "VT 190 bpm"  # the table keeps the latest body
    # a gap is still reported, even on a snapshot that is not shown
    gap = bridge.handle(frames(alarm("active", seq=4)))
    assert gap is not None and gap.body is None and gap.missed == 1
    assert bridge.stats.duplicates == 2 and bridge.stats.alarms == 1


def test_an_active_body_of_an_unknown_alarm_is_shown() -> None:
    bridge = AlertBridge()
    event = bridge.handle(frames(alarm("active", seq=17)))  # joined mid-alarm
    assert event is not None and event.body is not None and event.body["state"] == "active"
    assert [a["alarm_id"] for a in bridge.active_alarms()] == ["100:vtach:3600"]


def test_active_table_per_stream() -> None:
    bridge = AlertBridge()
    bridge.handle(frames(alarm("onset", seq=1, kind="vtach", onset=100)))
    bridge.handle(frames(alarm("onset", seq=2, kind="couplet", onset=200, priority="low")))
    bridge.handle(frames(alarm("onset", seq=1, stream="101", kind="brady", onset=300, priority="medium")))
    bridge.handle(frames(alarm("update", seq=3, kind="vtach", onset=100, sample=500)))
    assert [a["kind"] for a in bridge.active_alarms("100")] == ["vtach", "couplet"]
    assert bridge.active_alarms("100")[0]["state"] == "update"
    assert [a["kind"] for a in bridge.active_alarms("101")] == ["brady"]
    end = bridge.handle(frames(alarm("end", seq=4, kind="vtach", onset=100, end_reason="condition cleared")))
    assert end is not None and end.body is not None  # an end is always shown
    assert [a["kind"] for a in bridge.active_alarms("100")] == ["couplet"]
    bridge.handle(frames(alarm("end", seq=2, stream="101", kind="brady", onset=300, priority="medium")))
    assert "101" not in bridge.active
    assert bridge.active_alarms("101") == []
    # an end for an alarm never seen is shown and changes nothing
    stray = bridge.handle(frames(alarm("end", seq=5, kind="pause", onset=1)))
    assert stray is not None and stray.body is not None
    assert len(bridge.active_alarms()) == 1


def test_a_restarted_monitor_drops_the_old_alarms_and_numbering() -> None:
    bridge = AlertBridge()
    bridge.handle(frames(alarm("onset", seq=50)))
    event = bridge.handle(frames(alarm("onset", seq=1, kind="brady", onset=10, monitor="bedside-9-1700000500")))
    assert event is not None and event.restarted and event.missed == 0
    assert [d["kind"] for d in event.dropped] == ["vtach"]
    assert "monitor restarted" in event.notes[0]
    assert [a["kind"] for a in bridge.active_alarms()] == ["brady"]
    assert bridge.stats.restarts == 1


def test_format_message_lines() -> None:
    line = format_message(alarm("onset"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  100\s+HIGH\s+onset\s+VT 182 bpm, 9 beats", line), line
    end = format_message(alarm("end", priority="medium", text="VT over", end_reason="condition cleared"))
    assert "MEDIUM" in end and end.endswith("VT over (condition cleared)")
    assert "\x1b" not in format_message(alarm(text="\x1b[2Jgotcha"))  # no terminal control from the wire
    assert "HR 72 bpm" in format_message(EXAMPLES["vitals"])
    assert "HR -- bpm" in format_message(dict(EXAMPLES["vitals"], hr=None))
    assert "V at sample 370" in format_message(EXAMPLES["beat"])
    assert "status OK, 1/2 streams" in format_message(EXAMPLES["status"])
    assert "wave   4 values at 125 Hz from sample 36000" in format_message(EXAMPLES["wave"])
    assert "values at 125 Hz MLII from" in format_message(dict(EXAMPLES["wave"], lead="MLII"))


def test_parse_time() -> None:
    now = 1_700_000_000.0
    assert parse_time("-10m", now) == now - 600
    assert parse_time("2h", now) == now - 7200
    assert parse_time("-1d", now) == now - 86400
    assert parse_time("-30s", now) == now - 30
    assert parse_time("2023-11-14T22:13:20+00:00") == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000.0
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("yesterday")


# --- --exec -------------------------------------------------------------------------------------------------


def test_command_runner_passes_the_alarm_in_the_environment(tmp_path: Path) -> None:
    script = (
        "import json, os, sys\n"
        "keys = ['STREAM', 'KIND', 'PRIORITY', 'STATE', 'TEXT', 'ID', 'JSON']\n"
        "json.dump({k: os.environ['ECG_ALARM_' + k] for k in keys}, open(sys.argv[1], 'w'))\n"
    )
    out = tmp_path / "env.json"
    err = io.StringIO()
    runner = CommandRunner([sys.executable, "-c", script, str(out)], err)
    assert runner.start(alarm("onset"))
    assert runner.wait(10.0) == 0
    seen = json.loads(out.read_text())
    assert seen["STREAM"] == "100" and seen["KIND"] == "vtach" and seen["PRIORITY"] == "high"
    assert seen["STATE"] == "onset" and seen["TEXT"] == "VT 182 bpm, 9 beats" and seen["ID"] == "100:vtach:3600"
    assert json.loads(seen["JSON"]) == alarm("onset")
    assert err.getvalue() == ""


def test_command_runner_reports_failures_and_goes_on(tmp_path: Path) -> None:
    err = io.StringIO()
    missing = CommandRunner([str(tmp_path / "no-such-command")], err)
    assert not missing.start(alarm())
    assert not missing.start(alarm("end"))
    assert missing.failed == 2
    assert err.getvalue().count("cannot run") == 2
    failing = CommandRunner([sys.executable, "-c", "raise SystemExit(3)"], err)
    assert failing.start(alarm())
    assert failing.wait(10.0) == 0
    assert "exited with status 3 for 100:vtach:3600" in err.getvalue()


# --- the socket loop and the command line ----------------------------------------------------------------


class Publisher:
    """An XPUB socket standing in for the monitor."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def subscribed(self, n: int = 1) -> list[bytes]:
        got = []
        for _ in range(n):
            assert self.sock.poll(5000), "the bridge never subscribed"
            got.append(self.sock.recv())
        return got

    def send(self, body: dict[str, Any]) -> None:
        self.sock.send_multipart(frames(body))


@pytest.fixture
def pub(ctx: zmq.Context[zmq.Socket[bytes]], monkeypatch: pytest.MonkeyPatch) -> Iterator[Publisher]:
    monkeypatch.setenv("ECG_MONITOR_SNAPSHOT", "off")  # a bare publisher answers no snapshots
    publisher = Publisher(ctx)
    yield publisher
    publisher.sock.close(linger=0)


def run_in_thread(argv: list[str]) -> tuple[threading.Thread, dict[str, int]]:
    result: dict[str, int] = {}

    def target() -> None:
        result["code"] = main(argv)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_bridge_prints_appends_and_runs_commands(
    pub: Publisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    appended = tmp_path / "alarms.jsonl"
    exec_dir = tmp_path / "exec"
    exec_dir.mkdir()
    script = (
        "import os, pathlib, sys\n"
        "pathlib.Path(sys.argv[1], os.environ['ECG_ALARM_STATE'] + '.json').write_text(os.environ['ECG_ALARM_JSON'])"
    )
    argv = ["--connect", pub.endpoint, "--stream", "100", "--count", "3", "--timeout", "10"]
    argv += ["--append", str(appended), "--exec", shlex.join([sys.executable, "-c", script, str(exec_dir)])]
    thread, result = run_in_thread(argv)
    try:
        assert pub.subscribed() == [b"\x01alarm/100/"]
        pub.send(alarm("onset", seq=1))
        pub.send(alarm("onset", seq=1, stream="1000"))  # not subscribed: "alarm/100/" must not match it
        pub.send(alarm("active", seq=2))  # a snapshot of an alarm already shown
        pub.send(alarm("update", seq=3, sample=4000, text="VT 190 bpm, 14 beats"))
        pub.send(alarm("end", seq=5, sample=5000, text="VT over", end_reason="condition cleared"))
    finally:
        thread.join(10)
    assert not thread.is_alive()
    assert result["code"] == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3, lines
    assert re.search(r"100\s+HIGH\s+onset\s+VT 182 bpm, 9 beats$", lines[0])
    assert re.search(r"100\s+HIGH\s+update\s+VT 190 bpm, 14 beats$", lines[1])
    assert re.search(r"100\s+HIGH\s+end\s+VT over \(condition cleared\)$", lines[2])
    assert "missed 1 message on alarm/100/" in captured.err
    assert [json.loads(x)["state"] for x in appended.read_text().splitlines()] == ["onset", "update", "end"]
    for state in ("onset", "update", "end"):
        body = json.loads((exec_dir / f"{state}.json").read_text())
        assert body["state"] == state and body["stream"] == "100"


def test_bridge_json_output_and_other_topics(pub: Publisher, capsys: pytest.CaptureFixture[str]) -> None:
    thread, result = run_in_thread(["--connect", pub.endpoint, "--topics", "alarm,vitals", "--json", "--count", "1"])
    try:
        assert sorted(pub.subscribed(2)) == [b"\x01alarm/", b"\x01vitals/"]
        pub.send(EXAMPLES["vitals"])
        pub.sock.send_multipart([b"alarm/100/", b"garbage"])
        pub.send(alarm("onset", stream="7"))
    finally:
        thread.join(10)
    assert result["code"] == 0
    captured = capsys.readouterr()
    bodies = [json.loads(x) for x in captured.out.splitlines()]
    assert [b["type"] for b in bodies] == ["vitals", "alarm"]
    assert bodies[1] == alarm("onset", stream="7")
    assert "rejected a message on alarm/100/: json" in captured.err
    assert "1 rejected (json 1)" in captured.err


def test_timeout_without_enough_alarms_exits_1(pub: Publisher, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    assert main(["--connect", pub.endpoint, "--count", "1", "--timeout", "0.3"]) == 1
    assert time.monotonic() - t0 < 2.0
    assert main(["--connect", pub.endpoint, "--timeout", "0.2"]) == 0  # no --count: a timeout is the plan


def test_sigint_stops_the_bridge_cleanly(pub: Publisher, capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGINT)

    def interrupt() -> None:
        pub.subscribed()  # the bridge subscribes after installing its handlers
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        assert main(["--connect", pub.endpoint, "--timeout", "10"]) == 0
    finally:
        sender.join(10)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--connect is required"),
        (["--connect", "tcp://127.0.0.1:1", "--topics", "alarm,pages"], "unknown topic"),
        (["--connect", "tcp://127.0.0.1:1", "--stream", "../x"], "not a stream id"),
        (["--connect", "tcp://127.0.0.1:1", "--count", "0"], "positive integer"),
        (["--connect", "tcp://127.0.0.1:1", "--timeout", "-1"], "positive number"),
        (["--connect", "tcp://127.0.0.1:1", "--exec", "  "], "empty command"),
        (["history", "--since", "last tuesday"], "ISO-8601"),
        (["history", "--priority", "urgent"], "invalid choice"),
    ],
)
def test_argument_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "ecg-alerts: error:" in err and message in err


def test_a_bad_endpoint_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--connect", "nonsense://x", "--timeout", "0.1"]) == 2
    assert "ecg-alerts: error: --connect nonsense://x" in capsys.readouterr().err


# --- history ------------------------------------------------------------------------------------------------


def write_log(path: Path) -> float:
    now = time.time()
    with AlarmLog(path, run_id="run-1") as log:
        log.record(alarm("onset", kind="brady", priority="medium", text="Brady 38 bpm", t=now - 7200))
        log.record(alarm("end", kind="brady", priority="medium", text="Brady over", end_reason="cleared", t=now - 7100))
        log.record(alarm("onset", stream="101", text="VT 150 bpm", t=now - 120))
        log.record(alarm("active", stream="101", t=now - 100))
        log.record(alarm("update", stream="101", text="VT 160 bpm", t=now - 60))
    return now


def test_history_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alarms.sqlite"
    write_log(path)
    assert main(["history", "--log", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "stream", "priority", "state", "kind", "text"]
    assert len(lines) == 5
    assert re.search(r"101\s+HIGH\s+update\s+vtach\s+VT 160 bpm$", lines[1])
    assert re.search(r"100\s+MEDIUM\s+end\s+brady\s+Brady over \(cleared\)$", lines[3])
    assert lines[4].endswith("Brady 38 bpm")


def test_history_filters_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alarms.sqlite"
    write_log(path)
    monkeypatch.setenv("ECG_MONITOR_ALARM_LOG", str(path))
    assert main(["history", "--since", "-10m", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["stream"], r["state"]) for r in rows] == [("101", "update"), ("101", "onset")]
    assert rows[0]["details"] == {"beats": 9, "hr": 182.0} and rows[0]["run_id"] == "run-1"
    assert main(["history", "--kind", "brady", "--limit", "1", "--json"]) == 0
    assert [json.loads(x)["state"] for x in capsys.readouterr().out.splitlines()] == ["end"]
    assert main(["history", "--stream", "102"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no alarms" in captured.err


def test_history_of_a_missing_log_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.sqlite"
    assert main(["history", "--log", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "ecg-alerts: error:" in err and str(missing) in err
    assert not missing.exists()
