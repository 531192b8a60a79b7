"""The alert-bus message format: the shipped JSON Schema, validation with reasons, topics, body builders."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from monitor import protocol, vocabulary
from monitor.alarms import AlarmEvent, Vitals
from monitor.errors import FrameError
from monitor.protocol import (
    MESSAGE_FIELDS,
    MESSAGE_TYPES,
    SCHEMA,
    alarm_body,
    beat_body,
    check_body,
    decode_message,
    encode_message,
    load_schema,
    seal,
    snapshot_body,
    status_body,
    subscriptions,
    vitals_body,
)
from monitor.protocol._messages import _validators

MONITOR = "bedside-7-1700000000"


def alarm(
    state: str = "onset",
    *,
    seq: int = 1,
    stream: str = "100",
    kind: str = "vtach",
    onset: int = 3600,
    sample: int | None = None,
    priority: str = "high",
    text: str = "VT 182 bpm, 9 beats",
    end_reason: str | None = None,
    monitor: str = MONITOR,
    t: float = 1_700_000_000.0,
) -> dict[str, Any]:
    return {
        "schema": 1,
        "type": "alarm",
        "seq": seq,
        "time": t,
        "monitor": monitor,
        "stream": stream,
        "alarm_id": f"{stream}:{kind}:{onset}",
        "kind": kind,
        "category": "clinical",
        "priority": priority,
        "state": state,
        "snapshot": state == "active",
        "onset_sample": onset,
        "sample": onset if sample is None else sample,
        "fs": 360.0,
        "text": text,
        "details": {"hr": 182.0, "beats": 9},
        "end_reason": end_reason,
    }


def envelope(kind: str, seq: int = 1) -> dict[str, Any]:
    return {"schema": 1, "type": kind, "seq": seq, "time": 1_700_000_000.5, "monitor": MONITOR}


EXAMPLES: dict[str, dict[str, Any]] = {
    "alarm": alarm(),
    "beat": {
        **envelope("beat"),
        "stream": "100",
        "sample": 370,
        "fs": 360.0,
        "label": "V",
        "rr_prev": 0.61,
        "latency_ms": 12.5,
    },
    "vitals": {
        **envelope("vitals"),
        "stream": "100",
        "sample": 36000,
        "fs": 360.0,
        "hr": 72.0,
        "pvc_per_min": 1.5,
        "quality": "clean",
        "active_alarms": ["vtach"],
    },
    "wave": {
        **envelope("wave"),
        "stream": "100",
        "sample": 36000,
        "fs": 125.0,
        "source_fs": 360.0,
        "units": "mV",
        "values": [0.01, 0.02, None, 1.2],
    },
    "ack": {
        **envelope("ack"),
        "stream": "100",
        "alarm_id": "100:vt:3600",
        "by": "ann",
        "at": 1700000000.5,
    },
    "status": {
        **envelope("status"),
        "uptime_s": 12.0,
        "streams": 2,
        "streams_active": 1,
        "messages": 500,
        "rejected": {"stream": 1},
        "beats": 900,
        "labelled": 899,
        "late": 0,
        "shed": 0,
        "alarms_active": 1,
        "engine": "cnn-cpu",
        "health": "ok",
        "problems": [],
    },
}


# the optional fields naming the device's index space, present once a stream has begun a second segment
DEVICE_FIELDS: dict[str, tuple[str, ...]] = {
    "alarm": ("boot", "segment", "onset_boot", "onset_segment"),
    "beat": ("boot", "segment"),
    "vitals": ("boot", "segment"),
    "wave": ("boot", "segment"),
}
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    **DEVICE_FIELDS,
    "wave": ("boot", "segment", "lead", "monitored"),
    "status": ("snapshot_endpoint",),
}
SNAPSHOT_HEADER: dict[str, Any] = {
    "schema": 1,
    "type": "snapshot",
    "time": 1.0,
    "monitor": "m1",
    "topics": ["alarm/"],
    "seq": {"alarm/100/": 7},
    "items": 1,
    "error": None,
}


def topic_of(body: dict[str, Any]) -> str:
    return "status/" if body["type"] == "status" else f"{body['type']}/{body['stream']}/"


def frames(body: dict[str, Any], topic: str | None = None) -> list[bytes]:
    return [(topic or topic_of(body)).encode(), json.dumps(body).encode()]


# --- the JSON Schema file ----------------------------------------------------------------------------------------


def schema_errors(body: Any) -> list[str]:
    """What the plain draft 2020-12 validator finds wrong with ``body`` (the schema as a third party reads it)."""
    return [e.message for e in Draft202012Validator(load_schema()).iter_errors(body)]


def branch(kind: str) -> dict[str, Any]:
    defs: dict[str, Any] = load_schema()["$defs"]
    return dict(defs[kind])


def enum(kind: str, field: str) -> list[Any]:
    node = branch(kind)["properties"][field]
    while "$ref" in node:
        node = load_schema()["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return list(node["enum"])


def test_the_schema_is_valid_draft_2020_12_and_ships_as_package_data() -> None:
    root = load_schema()
    assert root["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(root)
    assert load_schema() is root  # read once
    assert _validators() is _validators()  # built once


def test_the_schema_enums_are_the_vocabulary() -> None:
    assert enum("alarm", "kind") == list(vocabulary.ALARM_KINDS)  # same order: clinical then technical
    assert enum("alarm", "category") == list(vocabulary.CATEGORIES)
    assert enum("alarm", "priority") == list(vocabulary.PRIORITIES)
    assert enum("beat", "label") == list(vocabulary.CLASSES)
    vitals_items = branch("vitals")["properties"]["active_alarms"]["items"]["$ref"]
    assert vitals_items == branch("alarm")["properties"]["kind"]["$ref"]


def test_message_types_and_required_fields_come_from_the_schema() -> None:
    root = load_schema()
    consts = [
        load_schema()["$defs"][b["$ref"].removeprefix("#/$defs/")]["properties"]["type"]["const"] for b in root["oneOf"]
    ]
    assert consts == list(MESSAGE_TYPES)
    for kind in MESSAGE_TYPES:
        optional = set(branch(kind)["properties"]) - set(MESSAGE_FIELDS[kind])
        assert optional == set(OPTIONAL_FIELDS.get(kind, ())), kind  # the device's index space, where to snapshot
        assert set(root["required"]) <= set(MESSAGE_FIELDS[kind])
        assert set(EXAMPLES[kind]) == set(MESSAGE_FIELDS[kind]), kind


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_examples_validate(kind: str) -> None:
    body = EXAMPLES[kind]
    assert schema_errors(body) == []
    assert check_body(json.loads(json.dumps(body))) == body
    with_extra = dict(body, added_later="fine")  # fields may be added within schema 1
    assert schema_errors(with_extra) == []
    check_body(with_extra)


def broken_examples() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for kind, body in EXAMPLES.items():
        for name in body:
            out.append((f"{kind} without {name}", {k: v for k, v in body.items() if k != name}))
        out.append((f"{kind} schema 2", dict(body, schema=2)))
        out.append((f"{kind} schema true", dict(body, schema=True)))
        out.append((f"{kind} seq 0", dict(body, seq=0)))
        out.append((f"{kind} time string", dict(body, time="now")))
        out.append((f"{kind} monitor null", dict(body, monitor=None)))
    a = EXAMPLES["alarm"]
    out += [
        ("alarm kind", dict(a, kind="hiccups")),
        ("alarm category", dict(a, category="clerical")),
        ("alarm priority", dict(a, priority="HIGH")),
        ("alarm state", dict(a, state="paused")),
        ("alarm snapshot for onset", dict(a, snapshot=True)),
        ("alarm active without snapshot", dict(a, state="active")),
        ("alarm stream", dict(a, stream="../x")),
        ("alarm fs 0", dict(a, fs=0)),
        ("alarm sample float", dict(a, sample=3.5)),
        ("alarm sample bool", dict(a, onset_sample=True)),
        ("alarm details list", dict(a, details=[])),
        ("alarm end_reason number", dict(a, end_reason=3)),
        ("beat label", dict(EXAMPLES["beat"], label="X")),
        ("vitals alarm kind", dict(EXAMPLES["vitals"], active_alarms=["hiccups"])),
        ("vitals pvc rate", dict(EXAMPLES["vitals"], pvc_per_min=-1.0)),
        ("status health", dict(EXAMPLES["status"], health="fine")),
        ("status rejected", dict(EXAMPLES["status"], rejected={"stream": -1})),
        ("status problems", dict(EXAMPLES["status"], problems=[1])),
        ("unknown type", dict(EXAMPLES["beat"], type="heartbeat")),
    ]
    return out


@pytest.mark.parametrize(("case", "body"), broken_examples(), ids=lambda x: x if isinstance(x, str) else "")
def test_broken_messages_are_rejected(case: str, body: dict[str, Any]) -> None:
    assert schema_errors(body), case
    with pytest.raises(FrameError):
        check_body(body)


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        ([1, 2], "json", "must be a JSON object"),
        (dict(alarm(), schema=2), "schema", "schema 2 is not supported"),
        ({k: v for k, v in alarm().items() if k != "schema"}, "schema", "schema null"),
        (dict(alarm(), schema=2, type="page"), "schema", "schema 2"),
        (dict(alarm(), type="page"), "type", 'unknown message type "page"'),
        ({k: v for k, v in alarm().items() if k != "type"}, "type", "unknown message type null"),
        ({k: v for k, v in alarm().items() if k not in ("seq", "kind")}, "field", "alarm message without seq, kind"),
        (dict(alarm(), seq="1"), "field", "seq:"),
        (dict(alarm(), snapshot=True), "field", "snapshot:"),
        (dict(EXAMPLES["status"], rejected={"stream": -1}), "field", "rejected['stream']:"),
        (dict(EXAMPLES["vitals"], active_alarms=["hiccups"]), "field", "active_alarms[0]:"),
    ],
)
def test_rejections_have_a_short_reason_naming_the_field(body: Any, reason: str, detail: str) -> None:
    with pytest.raises(FrameError) as info:
        check_body(body)
    assert info.value.reason == reason
    assert detail in info.value.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 1.0), ("sample", 3600.0), ("fs", math.nan), ("fs", math.inf), ("time", -math.inf)],
)
def test_integers_are_ints_and_numbers_are_finite(field: str, value: float) -> None:
    with pytest.raises(FrameError) as info:
        check_body(dict(alarm(), **{field: value}))
    assert info.value.reason == "field"


# --- validation of received frames ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        ([b"alarm/100/"], "frames"),
        ([b"alarm/100/", b"{}", b"extra"], "frames"),
        ([b"\xff/", json.dumps(alarm()).encode()], "topic"),
        ([b"alarm/100/", b"not json"], "json"),
        ([b"alarm/100/", b"\xff\xfe"], "json"),
        ([b"alarm/100/", b"[1, 2]"], "json"),
        ([b"alarm/100/", json.dumps(alarm()).replace("360.0", "NaN").encode()], "json"),
        ([b"alarm/100/", json.dumps(dict(alarm(), schema=2)).encode()], "schema"),
        ([b"alarm/100/", json.dumps(dict(alarm(), type="page")).encode()], "type"),
        ([b"alarm/100/", json.dumps(dict(alarm(), seq="1")).encode()], "field"),
        ([b"alarm/101/", json.dumps(alarm()).encode()], "topic"),
        ([b"vitals/100/", json.dumps(alarm()).encode()], "topic"),
        ([b"snapshot", json.dumps(SNAPSHOT_HEADER).encode()], "type"),  # a snapshot header is no bus message
    ],
)
def test_decode_message_rejects_with_a_reason(parts: list[bytes], reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_message(parts)
    assert info.value.reason == reason


def test_a_snapshot_header_is_checked_like_a_body() -> None:
    assert check_body(dict(SNAPSHOT_HEADER)) == SNAPSHOT_HEADER
    refused = dict(SNAPSHOT_HEADER, topics=[], seq={}, items=0, error="role", text="for bridges")
    assert check_body(refused) == refused
    for bad in (
        dict(SNAPSHOT_HEADER, seq={"alarm/100/": 0}),
        dict(SNAPSHOT_HEADER, items=-1),
        dict(SNAPSHOT_HEADER, topics=["x" * 257]),
        {k: v for k, v in SNAPSHOT_HEADER.items() if k != "seq"},
    ):
        with pytest.raises(FrameError) as info:
            check_body(bad)
        assert info.value.reason == "field"
    assert check_body(dict(EXAMPLES["status"], snapshot_endpoint="tcp://127.0.0.1:5571"))["snapshot_endpoint"]


def test_subscriptions() -> None:
    assert subscriptions(["alarm"]) == ["alarm/"]
    assert subscriptions(["alarm", "vitals", "status"], ["100", "10"]) == [
        "alarm/100/",
        "alarm/10/",
        "vitals/100/",
        "vitals/10/",
        "status/",
    ]
    with pytest.raises(ValueError, match="unknown topic"):
        subscriptions(["alarms"])


# --- building bodies -------------------------------------------------------------------------------------------


def test_built_bodies_follow_the_schema() -> None:
    event = AlarmEvent("bed-1", "vtach", "onset", 1000, 1500, 250.0, "VT 180 bpm", {"hr": 180.0, "x": math.nan})
    body = alarm_body(event)
    assert body["alarm_id"] == event.alarm_id and body["priority"] == "high" and body["details"]["x"] is None
    snap = snapshot_body(body)
    assert (snap["state"], snap["snapshot"], body["state"]) == ("active", True, "onset")
    vitals = Vitals("bed-1", 1750, 250.0, 71.96, 6.0, "clean", ("vtach",))
    built = [
        body,
        snap,
        beat_body("bed-1", 1500, 250.0, "V", None, 0.0125),
        vitals_body(
            vitals.stream,
            vitals.sample,
            vitals.fs,
            hr=vitals.hr,
            pvc_per_min=vitals.pvc_per_min,
            quality=vitals.quality,
            active_alarms=vitals.active,
        ),
        status_body({k: v for k, v in EXAMPLES["status"].items() if k not in ("schema", "type", "seq", "time")}),
    ]
    for seq, b in enumerate(built, start=1):
        sealed = seal(dict(b), seq=seq, time=1000.0, monitor="m1")
        assert sealed["schema"] == SCHEMA
        assert protocol.topic_of(sealed) == topic_of(sealed)
        parts = encode_message(topic_of(sealed), sealed)
        assert decode_message(parts) == (topic_of(sealed), sealed)
    assert built[2]["latency_ms"] == 12.5 and built[3]["hr"] == 72.0
    assert topic_of(built[4]) == "status/" and topic_of(body) == "alarm/bed-1/"
    with pytest.raises(ValueError):
        encode_message("beat/bed-1/", dict(built[2], rr_prev=math.nan))


def test_bodies_name_the_device_index_space_only_when_given_one() -> None:
    event = AlarmEvent("bed-1", "vtach", "update", 61_000, 90_500, 250.0, "VT 180 bpm", {"hr": 180.0})
    plain = alarm_body(event)
    assert not set(DEVICE_FIELDS["alarm"]) & set(plain)  # an unbroken stream's bodies are as they were
    assert (plain["onset_sample"], plain["sample"]) == (61_000, 90_500)
    placed = alarm_body(
        event, sample=500, onset_sample=60_000, boot="7", segment="b7", onset_boot="6", onset_segment=""
    )
    assert (placed["onset_sample"], placed["sample"], placed["alarm_id"]) == (60_000, 500, event.alarm_id)
    assert {k: placed[k] for k in DEVICE_FIELDS["alarm"]} == {
        "boot": "7",
        "segment": "b7",
        "onset_boot": "6",
        "onset_segment": "",
    }
    assert {k: v for k, v in placed.items() if k not in DEVICE_FIELDS["alarm"]} == dict(
        plain, sample=500, onset_sample=60_000
    )
    beat = beat_body("bed-1", 12, 250.0, "N", None, 0.01, boot=None, segment="s2")
    assert (beat["boot"], beat["segment"]) == (None, "s2")
    assert "segment" not in beat_body("bed-1", 12, 250.0, "N", None, 0.01, boot="7")
    vitals = vitals_body("bed-1", 9, 250.0, hr=None, pvc_per_min=0.0, quality="clean", active_alarms=(), segment="")
    assert (vitals["boot"], vitals["segment"]) == (None, "")
    for seq, b in enumerate((placed, beat, vitals), start=1):
        sealed = seal(dict(b), seq=seq, time=1.0, monitor="m1")
        assert schema_errors(sealed) == [] and check_body(sealed) == sealed


@pytest.mark.parametrize(
    ("field", "value"),
    [("boot", 7), ("boot", ""), ("boot", "a b"), ("segment", None), ("segment", "x1"), ("segment", "b"),
     ("onset_segment", 3), ("onset_boot", "é")],
)  # fmt: skip
def test_a_bad_device_index_space_is_rejected(field: str, value: Any) -> None:
    body = dict(EXAMPLES["alarm"], boot="7", segment="b7", onset_boot="7", onset_segment="b7")
    assert check_body(body) == body
    with pytest.raises(FrameError) as info:
        check_body(dict(body, **{field: value}))
    assert info.value.reason == "field" and field in str(info.value)
    if field in DEVICE_FIELDS["beat"]:
        beat = dict(EXAMPLES["beat"], boot="7", segment="b7")
        with pytest.raises(FrameError):
            check_body(dict(beat, **{field: value}))


def test_the_schema_enumerates_every_end_reason_of_the_vocabulary() -> None:
    alternatives = branch("alarm")["properties"]["end_reason"]["anyOf"]
    assert {"type": "null"} in alternatives
    enums = [a["enum"] for a in alternatives if "enum" in a]
    patterns = [a["pattern"] for a in alternatives if "pattern" in a]
    assert enums == [list(vocabulary.END_REASONS)]
    assert patterns == list(vocabulary.END_REASON_PATTERNS)


@pytest.mark.parametrize(
    ("reason", "valid"),
    [
        ("condition cleared", True),
        ("superseded by vfib", True),
        ("device silent for 600 s", True),
        ("device silent for 0.5 s", True),
        ("analysis resumed", True),
        ("ended while its worker was replaced", True),
        ("superseded by nonsense", False),
        ("because", False),
    ],
)
def test_end_reasons_outside_the_vocabulary_are_rejected(reason: str, valid: bool) -> None:
    body = alarm("end", end_reason=reason)
    if valid:
        check_body(body)
    else:
        with pytest.raises(FrameError):
            check_body(body)


def test_a_monitoring_interrupted_alarm_is_a_valid_body() -> None:
    onset = dict(alarm(kind="monitoring_interrupted", text="Monitoring interrupted"), category="technical")
    assert check_body(onset) == onset
    assert check_body(dict(onset, state="end", end_reason="analysis resumed"))["end_reason"] == "analysis resumed"
