"""The central station's ward: what a page is sent, from the bus messages a bridge let through."""

from __future__ import annotations

from typing import Any

from monitor.web import WardState, order_alarms


def _alarm(stream: str, kind: str, priority: str, category: str = "clinical", t: float = 0.0) -> dict[str, Any]:
    return {
        "alarm_id": f"{stream}:{kind}:1",
        "stream": stream,
        "kind": kind,
        "priority": priority,
        "category": category,
        "text": kind,
        "onset_sample": 1,
        "time": t,
    }


def _wave(stream: str, sample: int, n: int = 31) -> dict[str, Any]:
    return {
        "type": "wave",
        "stream": stream,
        "sample": sample,
        "fs": 125.0,
        "source_fs": 360.0,
        "values": [0.1] * n,
        "time": 5.0,
    }


def test_alarms_are_ordered_high_first_clinical_before_technical_then_oldest() -> None:
    alarms = [
        _alarm("a", "pvc", "low", t=1),
        _alarm("a", "leads_off", "medium", "technical", t=0),
        _alarm("a", "vt", "high", t=3),
        _alarm("a", "brady", "medium", t=2),
        _alarm("a", "vf", "high", t=2),
    ]
    assert [a["kind"] for a in order_alarms(alarms)] == ["vf", "vt", "brady", "leads_off", "pvc"]


def test_each_message_becomes_one_page_message_and_the_snapshot_keeps_the_last_strip() -> None:
    ward = WardState(strip_s=2.0)
    out = []
    for k in range(20):  # 20 chunks of a quarter second: 5 s of strip
        out += ward.apply("bus", _wave("bed-1", 90 * k), {})
    out += ward.apply("bus", {"type": "beat", "stream": "bed-1", "sample": 100, "label": "V"}, {})
    out += ward.apply(
        "bus",
        {"type": "vitals", "stream": "bed-1", "hr": 72.4, "quality": "clean", "pvc_per_min": 0, "sample": 1, "fs": 360},
        {},
    )
    assert [m["t"] for m in out] == ["wave"] * 20 + ["beat", "vitals"]
    assert out[0] == {
        "t": "wave", "bed": "bed-1", "sample": 0, "fs": 125.0, "source_fs": 360.0, "values": [0.1] * 31, "stamp": 5.0,
    }  # fmt: skip
    bed = ward.snapshot()["beds"][0]
    assert bed["bed"] == "bed-1" and bed["vitals"]["hr"] == 72.4
    kept = [w["sample"] for w in bed["wave"]]
    assert kept[-1] == 90 * 19 and 90 * 19 - kept[0] <= 2.25 * 360  # about strip_s of strip is kept, no more
    assert bed["beats"] == []  # sample 100 is older than the kept strip


def test_an_acknowledged_alarm_stays_shown_until_it_ends_and_the_ack_goes_with_it() -> None:
    ward = WardState()
    vt = _alarm("bed-2", "vt", "high")
    ward.apply("bus", None, {"bed-2": [vt]})
    assert not ward.acknowledge("bed-2", "bed-2:nothing:1", "ann", 10.0)
    assert ward.acknowledge("bed-2", vt["alarm_id"], "ann", 10.0)
    (msg,) = ward.alarm_messages(["bed-2"])
    assert msg["alarms"][0]["acked"] == {"by": "ann", "at": 10.0}
    ward.apply("bus", None, {"bed-2": [vt, _alarm("bed-2", "brady", "medium")]})
    assert [a["acked"] is not None for a in ward.snapshot()["beds"][0]["alarms"]] == [True, False]
    ward.apply("bus", None, {"bed-2": []})  # it ended
    ward.apply("bus", None, {"bed-2": [vt]})  # the same id again (a snapshot after a gap)
    assert ward.snapshot()["beds"][0]["alarms"][0]["acked"] is None


def test_the_local_feed_shows_its_own_monitors_bus_without_a_socket() -> None:
    import zmq

    from monitor.alarms import AlarmEvent
    from monitor.outputs import AlertBus, WaveChunk
    from monitor.web import LocalFeed

    ward = WardState()
    sent: list[dict[str, Any]] = []
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bus = AlertBus(ctx, "inproc://local-feed", monitor="m1", clock=lambda: 50.0)
    try:
        bus.taps.append(LocalFeed(ward, sent.extend))
        onset = AlarmEvent("bed-1", "asystole", "onset", 1000, 1000, 250.0, "Asystole")
        bus.alarm(onset)
        bus.wave(WaveChunk("bed-1", 0, 0.0, 125.0, 250.0, (0.1, 0.2)), "II", send=False)
        bus.status({"streams": 1})  # not the page's: ignored
        shown = ward.snapshot()["beds"][0]
        assert [a["kind"] for a in shown["alarms"]] == ["asystole"] and shown["wave"][0]["values"] == [0.1, 0.2]
        bus.alarm(AlarmEvent("bed-1", "asystole", "end", 1000, 2000, 250.0, "Asystole", end_reason="beats"))
        assert [m["t"] for m in sent] == ["alarms", "wave", "alarms"]
        assert sent[0]["alarms"][0]["time"] == 50.0 and sent[-1]["alarms"] == []
    finally:
        bus.close()
        ctx.term()


def _vitals(stream: str, sample: int, hr: float | None, fs: float = 250.0) -> dict[str, Any]:
    body = {"type": "vitals", "stream": stream, "hr": hr, "quality": "clean", "pvc_per_min": 0}
    return {**body, "sample": sample, "fs": fs}


def test_the_heart_rate_trend_is_the_mean_of_each_10_s_of_signal_with_holes_kept() -> None:
    ward = WardState()
    for t, hr in [(0, 60), (5, 80), (10, 90), (15, None), (31, 100), (45, 50), (52, 70)]:
        ward.apply("bus", _vitals("bed-1", t * 250, hr), {})
    trend = ward.bed_view("bed-1")["trend"]  # type: ignore[index]
    assert trend["step_s"] == 10.0 and trend["start_s"] == 0.0
    assert trend["hr"] == [70.0, 90.0, None, 100.0, 50.0]  # the step still open (50-60 s) is not shown yet
    ward.apply("bus", _vitals("bed-1", 0, 65), {})  # the device restarted: its samples begin again
    ward.apply("bus", _vitals("bed-1", 20 * 250, 66), {})
    assert ward.bed_view("bed-1")["trend"]["hr"] == [70.0, 90.0, None, 100.0, 50.0, 70.0, 65.0]  # type: ignore[index]
    assert ward.bed_view("nobody") is None


def test_the_alarm_history_keeps_onsets_and_ends_newest_first() -> None:
    ward = WardState()
    vt = _alarm("bed-1", "vt", "high")
    brady = dict(_alarm("bed-1", "brady", "medium"), onset_sample=500)
    ward.apply("bus", dict(vt, type="alarm", state="onset"), {"bed-1": [vt]})
    ward.apply("bus", dict(brady, type="alarm", state="onset"), {"bed-1": [vt, brady]})
    end = dict(vt, type="alarm", state="end", sample=900, end_reason="rhythm ended")
    ward.apply("bus", end, {"bed-1": [brady]})
    ward.apply("bus", None, {"bed-1": []})  # brady dropped unseen (a gap, a restarted monitor)
    history = ward.bed_view("bed-1")["history"]  # type: ignore[index]
    assert [(h["kind"], h["active"], h["end_sample"], h["end_reason"]) for h in history] == [
        ("brady", False, None, None),
        ("vt", False, 900, "rhythm ended"),
    ]


def test_a_second_lead_goes_to_the_pages_and_is_not_kept() -> None:
    ward = WardState()
    out = ward.apply("bus", dict(_wave("bed-1", 0), monitored=False, lead="V1"), {})
    assert [m["t"] for m in out] == ["wave2"] and out[0]["lead"] == "V1"
    assert ward.snapshot()["beds"][0]["wave"] == []  # the tile's strip is the monitored lead's
