"""``ecg-alerts --cluster``: the ECG_ALARMS stream read through a durable consumer, into the alarm log once."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.alarms import AlarmEvent
from monitor.cli._alerts import history_main, main
from monitor.cluster import AlarmPublisher, AlarmReader, ClusterLayout, Delivery, LocalCluster, ensure_layout
from monitor.outputs import AlarmLog
from tests.cluster._nats import connected

LAYOUT = ClusterLayout(partitions=2)


def _event(stream: str, state: str, sample: int, onset: int = 1000) -> AlarmEvent:
    return AlarmEvent(stream, "asystole", state, onset, sample, 250.0, "Asystole", end_reason=None)


TRANSITIONS = [
    _event("bed-1", "onset", 1000),
    _event("bed-2", "onset", 1200, 1200),
    AlarmEvent("bed-1", "asystole", "end", 1000, 3000, 250.0, "Asystole", end_reason="beats resumed"),
    _event("bed-3", "onset", 500, 500),
    AlarmEvent("bed-2", "asystole", "end", 1200, 4000, 250.0, "Asystole", end_reason="beats resumed"),
    _event("bed-1", "onset", 6000, 6000),
]

OPEN = {"bed-2": "bed-2:asystole:1200", "bed-3": "bed-3:asystole:500"}


async def _publish(servers: list[str], events: list[AlarmEvent], *, ack_wait_for: str | None = None) -> None:
    """Publish ``events`` as a worker would (``ack_wait_for``: first make that durable with a 1 s ack wait)."""
    async with connected(servers) as nc:
        js = nc.jetstream(timeout=10.0)
        _, open_kv = await ensure_layout(js, LAYOUT)
        if ack_wait_for is not None:
            await AlarmReader(js, ack_wait_for, ack_wait=1.0).open()
        publisher = AlarmPublisher(js, open_kv, 0, "w1")
        await publisher.adopt(lambda stream, kind: OPEN.get(stream))  # goes on with what a first call left open
        await publisher.publish(events)


def _alerts(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    status = main(["--json", *args])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def _key(body: dict[str, Any]) -> tuple[str, str, int]:
    return body["stream"], body["state"], body["sample"]


def test_a_reader_back_with_its_durable_gets_what_it_missed_in_order_once(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_publish(cluster.urls, TRANSITIONS[:3]))
    url = cluster.url
    status, first, _ = _alerts(capsys, "--cluster", url, "--durable", "bridge", "--count", "2", "--timeout", "20")
    assert status == 0
    assert [_key(b) for b in first] == [("bed-1", "onset", 1000), ("bed-2", "onset", 1200)]
    assert all(b["type"] == "alarm" and b["monitor"] == "w1" and b["seq"] >= 1 for b in first)
    asyncio.run(_publish(cluster.urls, TRANSITIONS[3:]))  # while the reader is away
    status, back, err = _alerts(capsys, "--cluster", url, "--durable", "bridge", "--count", "4", "--timeout", "20")
    assert status == 0, err
    assert [_key(b) for b in back] == [_key(b) for b in map(_body, TRANSITIONS[2:])]  # the rest, in order
    status, again, err = _alerts(capsys, "--cluster", url, "--durable", "bridge", "--timeout", "1")
    assert (status, again) == (0, [])  # none twice
    assert "0 transitions" in err


def _body(event: AlarmEvent) -> dict[str, Any]:
    return {"stream": event.stream, "state": event.state, "sample": event.sample}


def test_the_alarm_log_holds_each_transition_once_after_a_redelivery(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asyncio.run(_publish(cluster.urls, TRANSITIONS[:3], ack_wait_for="logger"))
    log = tmp_path / "alarms.sqlite"
    args = ["--cluster", cluster.url, "--durable", "logger", "--alarm-log", str(log)]

    async def lost(self: Delivery) -> None:  # the reader stops after the commit, before its acknowledgement
        return None

    with monkeypatch.context() as m:
        m.setattr(Delivery, "ack", lost)
        status, shown, _ = _alerts(capsys, *args, "--count", "3", "--timeout", "20")
    assert (status, len(shown)) == (0, 3)
    asyncio.run(_publish(cluster.urls, TRANSITIONS[3:4]))
    status, shown, err = _alerts(capsys, *args, "--timeout", "3")  # the unacknowledged come again after 1 s
    assert status == 0, err
    assert [_key(b) for b in shown] == [("bed-3", "onset", 500)]  # the three delivered again are not shown again
    assert "3 delivered again" in err
    reader = AlarmLog.reader(log)
    rows = reader.history(limit=None)
    reader.close()
    assert sorted((r["stream"], r["state"], r["sample"]) for r in rows) == sorted(
        _key(_body(e)) for e in TRANSITIONS[:4]
    )
    assert {r["run_id"] for r in rows} == {"cluster-logger"}
    assert history_main(["--log", str(log), "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_a_transition_recorded_once_is_stored_once(tmp_path: Path) -> None:
    body = {
        "alarm_id": "bed-1:asystole:1000",
        "stream": "bed-1",
        "kind": "asystole",
        "category": "clinical",
        "priority": "high",
        "state": "onset",
        "onset_sample": 1000,
        "sample": 1000,
        "fs": 250.0,
        "text": "Asystole",
        "details": {},
        "end_reason": None,
        "time": 1_700_000_000.0,
    }
    with AlarmLog(tmp_path / "a.sqlite", run_id="r", heartbeat_s=None) as log:
        assert log.record(body, once=True) is True
        assert log.record(body, once=True) is False
        assert log.record(dict(body, state="end", sample=2000), once=True) is True
        assert (log.count(), log.repeated, log.ignored) == (2, 1, 0)
        assert log.record(body) is True  # without once: stored again (the embedded monitor's behaviour)


def test_without_nats_py_cluster_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "nats", None)
    monkeypatch.setitem(sys.modules, "nats.errors", None)
    monkeypatch.setitem(sys.modules, "monitor.cluster", None)
    assert main(["--cluster", "nats://127.0.0.1:4222"]) == 2
    err = capsys.readouterr().err
    assert "--cluster needs nats-py" in err and "Traceback" not in err


def test_cluster_options_that_belong_to_the_bus_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--cluster", "nats://127.0.0.1:4222", "--connect", "tcp://127.0.0.1:5570"])
    assert exc.value.code == 2
    assert "--connect is for a monitor's alert bus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--connect", "tcp://127.0.0.1:5570", "--alarm-log", "x.sqlite"])
    assert "--alarm-log is for --cluster" in capsys.readouterr().err
