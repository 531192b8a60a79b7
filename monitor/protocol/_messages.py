"""The alert-bus message format: topics, bodies, and their validation against the shipped JSON Schema.

A bus message is two frames: the topic (``alarm/<stream>/``, ``beat/<stream>/``,
``vitals/<stream>/``, ``wave/<stream>/`` or ``status/``) and a JSON object. The object carries the
envelope (``schema``, ``type``, a per-topic ``seq``, the publication ``time``
and the ``monitor`` instance id) and the fields of its type. The one
description of those fields is ``monitor/protocol/schema/alert-bus-v1.schema.json``:
:func:`check_body` validates against it with ``jsonschema`` (fields not in the
schema may be added without a schema bump), and the builders here
(:func:`alarm_body`, :func:`beat_body`, :func:`vitals_body`, :func:`status_body`,
:func:`seal`) are what the monitor publishes. The enums of the schema equal
:mod:`monitor.vocabulary` (a test compares them).

Device indices: ``sample`` and ``onset_sample`` are the device's own sample
indices. Once a stream has begun a second segment (the device rebooted,
restarted, or was silent over the gap limit), alarm, beat and vitals bodies
also carry ``boot`` (the device's run, null for a v1 device) and ``segment``
(the label of the device's index space: ``""`` for the stream's first,
``b<boot>`` after a reboot, ``s<n>`` after a restart within one run; within
one label the device's indices only increase); an alarm body carries
``onset_boot`` and ``onset_segment`` for its ``onset_sample`` as well. An
unbroken stream's bodies leave these fields out. ``alarm_id`` stays unique
over the stream's whole life: its number is the onset's index on the
monitor's monotonic stream clock, which equals ``onset_sample`` until the
stream's first new segment.

Snapshots: a bridge that joins learns the alarms already active from the
monitor's snapshot endpoint (a ROUTER beside the bus), not from the bus. The
reply is a header (``type`` ``snapshot``, ``$defs/snapshot`` in the schema,
checked by :func:`check_body` too, and refused by :func:`decode_message`: it is
never a bus message) and one ``[topic, body]`` pair per active alarm, each an
alarm body with ``state`` ``active`` and ``snapshot`` true whose ``seq`` is
its topic's seq when the snapshot was taken. Vitals list every active alarm
of the stream in ``active_alarms``, technical ones included.

Two checks are stricter than plain JSON Schema, as the monitor never writes
such values: an ``integer`` is never ``1.0``, and a ``number`` is finite.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import monitor.vocabulary as vocabulary
from monitor.errors import FrameError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "ALARM_KINDS",
    "ALARM_STATES",
    "BEAT_LABELS",
    "CATEGORIES",
    "HEALTH",
    "MESSAGE_FIELDS",
    "MESSAGE_TYPES",
    "PRIORITIES",
    "SCHEMA",
    "SCHEMA_FILE",
    "STREAM_PATTERN",
    "TOPICS",
    "AlarmTransition",
    "ack_body",
    "alarm_body",
    "beat_body",
    "check_body",
    "decode_message",
    "encode_message",
    "is_stream_id",
    "load_schema",
    "seal",
    "snapshot_body",
    "status_body",
    "subscriptions",
    "topic_of",
    "vitals_body",
    "wave_body",
]

SCHEMA = 1
"""The schema number every body carries; bumped on an incompatible change."""
SCHEMA_FILE = "schema/alert-bus-v1.schema.json"
"""The JSON Schema of a body, as package data of :mod:`monitor.protocol`."""
MESSAGE_TYPES = ("alarm", "beat", "vitals", "wave", "ack", "status")
TOPICS = MESSAGE_TYPES
ALARM_KINDS: tuple[str, ...] = tuple(vocabulary.ALARM_KINDS)
CATEGORIES = vocabulary.CATEGORIES
PRIORITIES = vocabulary.PRIORITIES
ALARM_STATES = ("onset", "update", "end", "active")
BEAT_LABELS = vocabulary.CLASSES
HEALTH = ("ok", "degraded")
_SNAPSHOT = "snapshot"  # the header of a snapshot reply: checked like a body, never a bus message
STREAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_STREAM_RE = re.compile(STREAM_PATTERN)


def is_stream_id(text: str) -> bool:
    """Whether ``text`` can name a stream in a topic: letters, digits, ``.``, ``_``, ``-``; at most 64."""
    return _STREAM_RE.match(text) is not None


# --- the schema ------------------------------------------------------------------------------------------------


@functools.cache
def load_schema() -> dict[str, Any]:
    """The shipped JSON Schema of a message body (read once; do not modify the returned dict)."""
    text = resources.files("monitor.protocol").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _required(kind: str) -> tuple[str, ...]:
    return tuple(load_schema()["$defs"][kind]["required"])


MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {kind: _required(kind) for kind in MESSAGE_TYPES}
"""Required fields of each message type, from the schema. Other fields are allowed (added without a schema bump)."""


def _is_integer(checker: object, value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(checker: object, value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@functools.cache
def _validators() -> dict[str | None, Validator]:
    """The validator of the whole schema (key None) and one per message type, built once."""
    import jsonschema  # imported on first use: the monitor starts without it

    base = jsonschema.Draft202012Validator
    strict = jsonschema.validators.extend(
        base, type_checker=base.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_number})
    )
    schema = load_schema()
    strict.check_schema(schema)
    root: Validator = strict(schema)
    out: dict[str | None, Validator] = {None: root}
    for kind in (*MESSAGE_TYPES, _SNAPSHOT):
        out[kind] = root.evolve(schema=schema["$defs"][kind])
    return out


def _leaves(errors: Iterable[ValidationError]) -> Iterable[ValidationError]:
    for e in errors:
        yield e
        yield from _leaves(e.context)


def _fields(error: ValidationError) -> list[str]:
    """The body fields an error is about: the first step of its path, or the missing required fields."""
    if error.relative_path:
        return [str(error.relative_path[0])]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [str(name) for name in error.validator_value if name not in error.instance]
    return []


def _where(error: ValidationError) -> str:
    path = list(error.relative_path)
    return str(path[0]) + "".join(f"[{p!r}]" for p in path[1:]) if path else "body"


def _short(value: object, limit: int = 60) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_body(body: object) -> dict[str, Any]:
    """Return ``body`` if it is a valid v1 message body (or snapshot header), else raise :class:`FrameError`.

    Reasons: ``json`` (not an object), ``schema`` (another schema number, or
    none), ``type`` (unknown message type), ``field`` (a required field missing
    or of the wrong type, value or range).
    """
    if not isinstance(body, dict):
        raise FrameError("json", f"the body must be a JSON object, got {type(body).__name__}")
    validators = _validators()
    kind = body.get("type")
    branch = validators.get(kind) if isinstance(kind, str) else None
    errors = list((branch or validators[None]).iter_errors(body))
    if not errors:
        return body
    if any("schema" in _fields(e) for e in _leaves(errors)):
        got = _short(body.get("schema"))
        raise FrameError("schema", f"schema {got} is not supported (this bridge reads schema {SCHEMA})")
    if branch is None:
        raise FrameError("type", f"unknown message type {_short(kind)}")
    missing = [name for e in errors if e.validator == "required" for name in _fields(e)]
    if missing:
        raise FrameError("field", f"{kind} message without {', '.join(missing)}")
    import jsonschema

    worst = jsonschema.exceptions.best_match(errors)
    assert worst is not None
    raise FrameError("field", f"{_where(worst)}: {worst.message}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def topic_of(body: Mapping[str, Any]) -> str:
    """The topic a valid body is published on."""
    return "status/" if body["type"] == "status" else f"{body['type']}/{body['stream']}/"


def decode_message(parts: Sequence[bytes]) -> tuple[str, dict[str, Any]]:
    """Check one bus message, ``[topic, body]``; returns ``(topic, body)`` or raises :class:`FrameError`.

    Besides :func:`check_body`'s reasons: ``frames`` (not two frames),
    ``topic`` (a topic that is not UTF-8 or disagrees with the body); a body
    that is not UTF-8 JSON (NaN and infinities included) is ``json``.
    """
    if len(parts) != 2:
        raise FrameError("frames", f"expected 2 frames [topic, body], got {len(parts)}")
    try:
        topic = bytes(parts[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("topic", "the topic is not UTF-8") from None
    try:
        body = json.loads(bytes(parts[1]).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("json", f"the body is not UTF-8 JSON ({exc})") from None
    check_body(body)
    if body["type"] not in MESSAGE_TYPES:
        raise FrameError("type", f"a {body['type']} header is not a bus message")
    expected = topic_of(body)
    if topic != expected:
        raise FrameError("topic", f"topic {topic!r} does not match the body (expected {expected!r})")
    return topic, body


def subscriptions(topics: Sequence[str], streams: Sequence[str] = ()) -> list[str]:
    """Topic prefixes to subscribe to: ``alarm/100/`` for each stream asked, ``alarm/`` for all."""
    out: list[str] = []
    for t in topics:
        if t not in TOPICS:
            raise ValueError(f"unknown topic {t!r} (known: {', '.join(TOPICS)})")
        prefixes = ["status/"] if t == "status" else [f"{t}/{s}/" for s in streams] if streams else [f"{t}/"]
        out.extend(p for p in prefixes if p not in out)
    return out


# --- building bodies ---------------------------------------------------------------------------------------------


class AlarmTransition(Protocol):
    """What :func:`alarm_body` reads of an alarm transition (``monitor.alarms.AlarmEvent``)."""

    @property
    def stream(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def onset_sample(self) -> int: ...
    @property
    def sample(self) -> int: ...
    @property
    def fs(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def details(self) -> Mapping[str, float | int | None]: ...
    @property
    def end_reason(self) -> str | None: ...
    @property
    def category(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def alarm_id(self) -> str: ...


def _finite(value: Any) -> Any:
    """None for NaN and infinities (JSON has neither), else ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _segment(boot: str | None, segment: str | None, prefix: str = "") -> dict[str, Any]:
    """The ``boot`` and ``segment`` fields (after ``prefix``), none when ``segment`` is None."""
    return {} if segment is None else {f"{prefix}boot": boot, f"{prefix}segment": segment}


def alarm_body(
    event: AlarmTransition,
    *,
    sample: int | None = None,
    onset_sample: int | None = None,
    boot: str | None = None,
    segment: str | None = None,
    onset_boot: str | None = None,
    onset_segment: str | None = None,
) -> dict[str, Any]:
    """The bus/log representation of an alarm transition (without the envelope fields).

    ``sample`` and ``onset_sample`` replace the event's (the device's own
    indices where they differ from the stream's); ``alarm_id`` is always the
    event's. ``boot``/``segment`` (and ``onset_boot``/``onset_segment``) are
    added when ``segment`` (``onset_segment``) is not None.
    """
    return {
        "type": "alarm",
        "stream": event.stream,
        "alarm_id": event.alarm_id,
        "kind": event.kind,
        "category": event.category,
        "priority": event.priority,
        "state": event.state,
        "snapshot": False,
        "onset_sample": int(event.onset_sample if onset_sample is None else onset_sample),
        "sample": int(event.sample if sample is None else sample),
        "fs": float(event.fs),
        "text": event.text,
        "details": {k: _finite(v) for k, v in event.details.items()},
        "end_reason": event.end_reason,
        **_segment(boot, segment),
        **_segment(onset_boot, onset_segment, "onset_"),
    }


def snapshot_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """An active alarm's body as an item of a snapshot reply (state ``active``, ``snapshot`` true)."""
    return dict(body, state="active", snapshot=True)


def beat_body(
    stream: str,
    sample: int,
    fs: float,
    label: str,
    rr_prev: float | None,
    latency_s: float,
    *,
    boot: str | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    """A beat body; ``boot`` and ``segment`` are added when ``segment`` is not None."""
    return {
        "type": "beat",
        "stream": stream,
        "sample": int(sample),
        "fs": float(fs),
        "label": label,
        "rr_prev": _finite(rr_prev),
        "latency_ms": _finite(round(latency_s * 1000.0, 3)),
        **_segment(boot, segment),
    }


def vitals_body(
    stream: str,
    sample: int,
    fs: float,
    *,
    hr: float | None,
    pvc_per_min: float,
    quality: str,
    active_alarms: Sequence[str],
    boot: str | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    """A vitals body; ``boot`` and ``segment`` are added when ``segment`` is not None."""
    return {
        "type": "vitals",
        "stream": stream,
        "sample": int(sample),
        "fs": float(fs),
        "hr": None if hr is None else _finite(round(hr, 1)),
        "pvc_per_min": pvc_per_min,
        "quality": quality,
        "active_alarms": list(active_alarms),
        **_segment(boot, segment),
    }


def wave_body(
    stream: str,
    sample: int,
    fs: float,
    source_fs: float,
    values: Sequence[float | None],
    *,
    lead: str = "",
    monitored: bool = True,
    boot: str | None = None,
    segment: str | None = None,
) -> dict[str, Any]:
    """A waveform strip body: ``values`` (mV, ``None`` where there was no signal) at ``fs``, the first at stream
    sample ``sample`` (at ``source_fs``); ``monitored`` False (carried only then): a second lead, shown, not
    analysed; ``boot`` and ``segment`` are added when ``segment`` is not None."""
    return {
        "type": "wave",
        "stream": stream,
        "sample": int(sample),
        "fs": float(fs),
        "source_fs": float(source_fs),
        "lead": lead,
        "units": "mV",
        "values": [None if v is None or not math.isfinite(v) else round(float(v), 4) for v in values],
        **({} if monitored else {"monitored": False}),
        **_segment(boot, segment),
    }


def ack_body(stream: str, alarm_id: str, by: str, at: float) -> dict[str, Any]:
    """An acknowledgement body: ``by`` acknowledged the active alarm ``alarm_id`` at ``at`` (Unix seconds)."""
    return {"type": "ack", "stream": stream, "alarm_id": alarm_id, "by": by[:64], "at": float(at)}


def status_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "status", **fields}


def seal(body: dict[str, Any], *, seq: int, time: float, monitor: str) -> dict[str, Any]:
    """Add the envelope (``schema``, ``seq``, ``time``, ``monitor``) to ``body``, in place; returns it."""
    body["schema"] = SCHEMA
    body["seq"] = seq
    body["time"] = time
    body["monitor"] = monitor
    return body


def encode_message(topic: str, body: Mapping[str, Any]) -> list[bytes]:
    """The two frames of a sealed body; NaN or infinity in it is a ``ValueError`` (JSON has neither)."""
    return [topic.encode(), json.dumps(body, separators=(",", ":"), allow_nan=False).encode()]
