"""Late joiners: a snapshot of the active alarms for the asking bridge only (the clone pattern)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from monitor.alarms import AlarmEvent, Vitals
from monitor.cli._alerts import main
from monitor.errors import ConfigError
from monitor.outputs import AlertBridge, AlertBus, check_body
from monitor.transport import Authenticator, CurveConfig, add_client, init_keys, secure_connect
from tests.protocol.test_messages import MONITOR, alarm

FS = 250.0
Ctx = zmq.Context[zmq.Socket[bytes]]


def vt(state: str = "onset", sample: int = 1500, stream: str = "bed-1") -> AlarmEvent:
    return AlarmEvent(stream, "vtach", state, 1000, sample, FS, "VT 180 bpm", {"hr": 180.0})


def leads_off(state: str = "onset", stream: str = "bed-1") -> AlarmEvent:
    return AlarmEvent(stream, "leads_off", state, 1200, 1300, FS, "Leads off", {}, category="technical")


def recv(sock: zmq.Socket[bytes], timeout_ms: int = 2000) -> list[bytes] | None:
    return sock.recv_multipart() if sock.poll(timeout_ms, zmq.POLLIN) else None


def subscriber(
    ctx: Ctx, bus: AlertBus, prefix: bytes = b"alarm/", curve: CurveConfig | None = None
) -> zmq.Socket[bytes]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    secure_connect(sub, bus.endpoint, curve)
    sub.subscribe(prefix)
    for _ in range(200):  # the bus has taken the subscription
        if bus.serve_subscriptions():
            return sub
        threading.Event().wait(0.01)
    raise AssertionError("the subscription never arrived")


def ask(
    ctx: Ctx, bus: AlertBus, *prefixes: str, curve: CurveConfig | None = None, kind: int = zmq.DEALER
) -> list[bytes]:
    asker = ctx.socket(kind)
    asker.setsockopt(zmq.LINGER, 0)
    try:
        secure_connect(asker, bus.snapshot_endpoint, curve)
        asker.send_multipart(AlertBridge.snapshot_request(prefixes))
        for _ in range(200):
            bus.serve_subscriptions()
            if asker.poll(10, zmq.POLLIN):
                return asker.recv_multipart()
        raise AssertionError("no snapshot reply")
    finally:
        asker.close(linger=0)


@pytest.fixture
def bus(ctx: Ctx) -> Iterator[AlertBus]:
    b = AlertBus(ctx, "inproc://snap-bus", monitor="m1", clock=lambda: 1000.0)
    yield b
    b.close()


# --- the bus --------------------------------------------------------------------------------------------------


def test_a_late_bridge_gets_the_active_alarms_once_and_the_early_one_nothing(ctx: Ctx, bus: AlertBus) -> None:
    early = subscriber(ctx, bus)
    early_bridge = AlertBridge()
    bus.alarm(vt())
    bus.alarm(AlarmEvent("bed-2", "couplet", "onset", 10, 20, FS, "Couplet", {"beats": 2}))
    bus.alarm(AlarmEvent("bed-2", "couplet", "end", 10, 30, FS, "Couplet", {"beats": 2}, "condition cleared"))
    for _ in range(3):
        parts = recv(early)
        assert parts is not None and early_bridge.handle(parts) is not None
    # four bridges join: each asks, each gets its snapshot, nobody else sees anything
    replies = []
    for _ in range(4):
        late = subscriber(ctx, bus)
        replies.append(ask(ctx, bus, "alarm/"))
        late.close(linger=0)
    assert recv(early, 100) is None
    assert bus.snapshots == 4 and bus.snapshot_items == 4
    header = check_body(json.loads(replies[0][1]))
    assert header["seq"] == {"alarm/bed-1/": 1, "alarm/bed-2/": 2} and header["items"] == 1
    late_bridge = AlertBridge()
    events = late_bridge.apply_snapshot(replies[0])
    assert [e.body["alarm_id"] for e in events if e.body] == ["bed-1:vtach:1000"]
    assert late_bridge.stats.alarms == 1
    # the next update takes the next seq: in order for the early bridge, no gap for either
    bus.alarm(vt("update", 2000))
    parts = recv(early)
    assert parts is not None and json.loads(parts[1])["seq"] == 2
    event = early_bridge.handle(parts)
    assert event is not None and event.missed == 0 and early_bridge.stats.gaps == 0
    event = late_bridge.handle(parts)
    assert event is not None and event.missed == 0 and event.body is not None and event.body["state"] == "update"
    assert late_bridge.stats.alarms == 2 and late_bridge.stats.gaps == 0
    early.close(linger=0)


def test_a_snapshot_is_filtered_by_prefix_and_a_req_asker_works(ctx: Ctx, bus: AlertBus) -> None:
    bus.alarm(vt())
    bus.alarm(vt(stream="bed-10"))
    reply = ask(ctx, bus, "alarm/bed-1/", kind=zmq.REQ)
    header = json.loads(reply[1])
    assert header["topics"] == ["alarm/bed-1/"] and header["seq"] == {"alarm/bed-1/": 1}
    assert [json.loads(b)["stream"] for b in reply[3::2]] == ["bed-1"]
    assert json.loads(ask(ctx, bus, "status/")[1])["items"] == 0
    assert json.loads(ask(ctx, bus)[1])["items"] == 2  # no prefix: every topic


def test_a_bad_request_gets_an_error_and_is_counted(ctx: Ctx, bus: AlertBus) -> None:
    asker = ctx.socket(zmq.DEALER)
    asker.setsockopt(zmq.LINGER, 0)
    asker.connect(bus.snapshot_endpoint)
    asker.send_multipart([b"gimme"])
    asker.send_multipart([b"snapshot", b"\xff"])
    replies = []
    for _ in range(200):
        bus.serve_subscriptions()
        while asker.poll(10, zmq.POLLIN):
            replies.append(asker.recv_multipart())
        if len(replies) == 2:
            break
    asker.close(linger=0)
    headers = [check_body(json.loads(r[1])) for r in replies]
    assert [h["error"] for h in headers] == ["request", "request"]
    assert bus.snapshots_refused == {"request": 2} and bus.snapshots == 0
    bridge = AlertBridge()
    (event,) = bridge.apply_snapshot(replies[0])
    assert event.body is None and "refused a snapshot (request)" in event.notes[0]


def test_vitals_list_the_technical_alarms(ctx: Ctx, bus: AlertBus) -> None:
    sub = subscriber(ctx, bus, b"vitals/")
    bus.alarm(leads_off())
    bus.vitals(Vitals("bed-1", 1750, FS, 80.0, 0.0, "leads off", ("brady",)))
    bus.alarm(leads_off("end"))
    bus.vitals(Vitals("bed-1", 2000, FS, 80.0, 0.0, "clean", ("brady",)))
    got = [recv(sub) for _ in range(2)]
    assert [json.loads(p[1])["active_alarms"] for p in got if p] == [["brady", "leads_off"], ["brady"]]
    sub.close(linger=0)


def test_status_names_the_snapshot_endpoint(ctx: Ctx) -> None:
    bus = AlertBus(ctx, "tcp://127.0.0.1:*", monitor="m1")
    try:
        assert bus.snapshot_endpoint.startswith("tcp://127.0.0.1:") and bus.snapshot_endpoint != bus.endpoint
        sub = subscriber(ctx, bus, b"status/")
        bus.status({"uptime_s": 1.0, "streams": 0, "streams_active": 0, "messages": 0, "rejected": {}, "beats": 0,
                    "labelled": 0, "late": 0, "shed": 0, "alarms_active": 0, "engine": "none", "health": "ok",
                    "problems": []})  # fmt: skip
        parts = recv(sub)
        assert parts is not None and check_body(json.loads(parts[1]))["snapshot_endpoint"] == bus.snapshot_endpoint
        sub.close(linger=0)
    finally:
        bus.close()


def test_default_snapshot_endpoints() -> None:
    default = AlertBus.default_snapshot_endpoint
    assert default("tcp://127.0.0.1:5570") == "tcp://127.0.0.1:5571"
    assert default("tcp://*:*") == "tcp://*:*"
    assert default("ipc:///tmp/bus") == "ipc:///tmp/bus.snapshot"
    assert default("inproc://bus") == "inproc://bus.snapshot"
    for bad in ("tcp://host:65535", "tcp://host:x", "ws://host:1", "nonsense"):
        with pytest.raises(ConfigError):
            default(bad)


# --- the bridge's side ------------------------------------------------------------------------------------------


def reply(seq: dict[str, int], *bodies: dict[str, Any], topics: tuple[str, ...] = ("alarm/",)) -> list[bytes]:
    header = {"schema": 1, "type": "snapshot", "time": 1.0, "monitor": MONITOR, "topics": list(topics), "seq": seq,
              "items": len(bodies), "error": None}  # fmt: skip
    out = [b"snapshot", json.dumps(header).encode()]
    for b in bodies:
        out += [f"alarm/{b['stream']}/".encode(), json.dumps(b).encode()]
    return out


def frames(body: dict[str, Any]) -> list[bytes]:
    return [f"alarm/{body['stream']}/".encode(), json.dumps(body).encode()]


def test_a_snapshot_item_then_updates_apply_in_order() -> None:
    bridge = AlertBridge()
    events = bridge.apply_snapshot(reply({"alarm/100/": 5, "alarm/101/": 3}, alarm("active", seq=5)))
    assert [e.body["state"] for e in events if e.body] == ["active"]
    # updates queued before the snapshot was taken are already in it
    assert bridge.handle(frames(alarm("onset", seq=4))) is None
    assert bridge.handle(frames(alarm("update", seq=5))) is None
    nxt = bridge.handle(frames(alarm("update", seq=6, text="VT 190 bpm")))
    assert nxt is not None and nxt.body is not None and nxt.missed == 0
    assert bridge.active_alarms("100")[0]["text"] == "VT 190 bpm"
    end = bridge.handle(frames(alarm("end", seq=7)))
    assert end is not None and end.missed == 0 and bridge.active_alarms() == []
    assert (bridge.stats.skipped, bridge.stats.gaps, bridge.stats.alarms) == (2, 0, 3)
    # a topic the snapshot did not list starts at seq 1: its first message after a gap asks again
    gap = bridge.handle(frames(alarm("onset", seq=3, stream="102")))
    assert gap is not None and gap.missed == 2 and bridge.wanted == ["alarm/102/"]


def test_a_snapshot_replaces_what_was_missed() -> None:
    bridge = AlertBridge()
    bridge.handle(frames(alarm("onset", seq=1)))
    gap = bridge.handle(frames(alarm("onset", seq=4, stream="100", kind="couplet", text="Couplet")))
    assert gap is not None and bridge.wanted == ["alarm/100/"]
    # the VT ended unseen; the couplet, already shown, is not shown again
    couplet = dict(alarm("active", seq=4, kind="couplet", text="Couplet"))
    events = bridge.apply_snapshot(reply({"alarm/100/": 4}, couplet, topics=("alarm/100/",)))
    assert len(events) == 1 and events[0].body is None
    assert "1 alarm(s) ended while messages were missed: 100 vtach" in events[0].notes
    assert [a["kind"] for a in bridge.active_alarms()] == ["couplet"]


def test_a_restarted_monitor_is_asked_again_and_bad_replies_are_rejected() -> None:
    bridge = AlertBridge()
    bridge.apply_snapshot(reply({}, topics=("alarm/",)))
    event = bridge.handle(frames(alarm("onset", seq=1, monitor="m2")))
    assert event is not None and event.restarted and bridge.wanted == ["alarm/"]
    bad_replies = [
        ([b"snapshot"], "frames"),
        ([b"snapshot", b"{"], "json"),
        (reply({}, alarm("onset")), "field"),  # an item that is no active alarm
        (reply({})[:2] + frames(alarm("active")), "field"),  # more items than the header counts
    ]
    for bad, reason in bad_replies:
        (rejected,) = bridge.apply_snapshot(bad)
        assert rejected.error is not None and rejected.error.reason == reason, bad


# --- secured, and through ecg-alerts ----------------------------------------------------------------------------


def test_a_secured_snapshot_is_for_bridges_only(ctx: Ctx, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    init_keys(keys)
    add_client(keys, "desk", role="bridge")
    add_client(keys, "bed-1")
    with Authenticator(ctx, CurveConfig.server(keys)) as auth:
        bus = AlertBus(ctx, "tcp://127.0.0.1:*", monitor="m1", curve=CurveConfig.server(keys), authenticator=auth)
        try:
            bus.alarm(vt())
            desk = CurveConfig.client(keys, "desk")
            sub = subscriber(ctx, bus, curve=desk)
            events = AlertBridge().apply_snapshot(ask(ctx, bus, "alarm/", curve=desk))
            assert [e.body["alarm_id"] for e in events if e.body] == ["bed-1:vtach:1000"]
            refused = json.loads(ask(ctx, bus, "alarm/", curve=CurveConfig.client(keys, "bed-1"))[1])
            assert refused["error"] == "role" and refused["items"] == 0
            assert bus.snapshots == 1 and bus.snapshots_refused == {"role": 1}
            assert recv(sub, 100) is None
            sub.close(linger=0)
        finally:
            bus.close()


def test_ecg_alerts_shows_the_alarms_active_when_it_joins(ctx: Ctx, capsys: pytest.CaptureFixture[str]) -> None:
    bus = AlertBus(ctx, "tcp://127.0.0.1:*", monitor="m1")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            bus.serve_subscriptions()
            stop.wait(0.01)

    bus.alarm(vt())
    thread = threading.Thread(target=serve)
    thread.start()
    try:
        argv = ["--connect", bus.endpoint, "--snapshot", bus.snapshot_endpoint, "--count", "1", "--timeout", "10"]
        assert main(argv) == 0
    finally:
        stop.set()
        thread.join(10)
        bus.close()
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 and "active" in captured.out and "VT 180 bpm" in captured.out
    assert "missed" not in captured.err


# --- in-process taps --------------------------------------------------------------------------------------------


def test_taps_get_every_message_as_sealed_and_strips_can_stay_off_the_wire(ctx: Ctx, bus: AlertBus) -> None:
    from monitor.outputs import WaveChunk

    seen: list[tuple[str, dict[str, Any]]] = []

    def broken(topic: str, body: dict[str, Any]) -> None:
        raise RuntimeError("a reader's bug")

    bus.taps += [broken, lambda topic, body: seen.append((topic, body))]
    sub = subscriber(ctx, bus, b"")
    bus.alarm(vt())
    chunk = WaveChunk("bed-1", 0, 0.0, 125.0, 250.0, (0.1, None))
    bus.wave(chunk, "MLII", send=False)
    bus.wave(chunk, "MLII")
    assert [(t, b["seq"]) for t, b in seen] == [("alarm/bed-1/", 1), ("wave/bed-1/", 1), ("wave/bed-1/", 2)]
    assert all(check_body(b) == b for _, b in seen)  # sealed bodies, valid as on the wire
    assert bus.tap_failures == 3  # the broken reader is counted each time; the others go on
    got = [recv(sub) for _ in range(2)]
    assert [(p[0], json.loads(p[1])["seq"]) for p in got if p] == [(b"alarm/bed-1/", 1), (b"wave/bed-1/", 2)]
    assert recv(sub, 100) is None  # the strip kept off the wire never came
