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
