"""The alert bus: alarms, beat labels, vitals and status published over ZeroMQ.

The monitor binds an XPUB socket; bridges connect SUB sockets and subscribe to
topics (``alarm/<stream>/``, ``beat/<stream>/``, ``vitals/<stream>/``,
``wave/<stream>/`` (opt-in), ``status/``; a prefix such as ``alarm/`` takes every stream). Each message is
two frames: the topic and a JSON object carrying ``schema`` (1), ``type``,
a per-topic ``seq`` and the publication ``time``; :mod:`monitor.protocol` builds
the bodies, its JSON Schema ``monitor/protocol/schema/alert-bus-v1.schema.json``
describes them and the README documents it.

Snapshots (the ZeroMQ guide's clone pattern): beside the bus the monitor binds
a ROUTER, the snapshot endpoint (by default the bus port + 1 for ``tcp://``,
the bus address + ``.snapshot`` for ``ipc://`` and ``inproc://``; status
messages carry it as ``snapshot_endpoint``). A bridge that joins subscribes
first, then sends ``[b"snapshot", prefix, ...]`` (a DEALER, or a REQ) and gets
``[b"snapshot", header, topic, body, ...]`` back: the active alarms of the
alarm topics matching the prefixes (none: every topic), each sealed with its
topic's current ``seq``, and in the header the ``seq`` of every matching alarm
topic. Updates on the bus with a greater seq follow the snapshot; those with
a smaller or equal one are already in it. A snapshot goes to the asking peer
only and takes no sequence number: other subscribers see nothing of it.
Refused requests get a header with ``error`` set and no items.

Acknowledgements from a central station in another process (``ecg-central``): the same endpoint takes
``[b"ack", body]``, body a JSON object ``{"stream", "alarm_id", "by", "at"}`` naming an alarm active now;
the reply is ``[b"ack", {"ok": true}]`` or ``[b"ack", {"ok": false, "error": reason, "text": ...}]``
(reasons: ``request``, ``not_active``, and with CURVE ``role`` etc.: keys of role ``bridge`` or ``monitor``
only). An accepted one waits in :meth:`AlertBus.take_acks` for the monitor, which records it in its alarm
log and publishes it on ``ack/<stream>/`` as it does its own page's.

Sends never block: a message that would exceed a slow subscriber's queue is
counted in ``dropped`` (reported in status) instead of stalling the monitor.
With CURVE keys, only bridges whose public keys are authorized can subscribe,
both sockets are encrypted, and a snapshot is answered only to keys of role
``bridge`` or ``monitor`` (keys without a policy predate roles and pass).

In-process taps: each callable in :attr:`AlertBus.taps` gets ``(topic, body)`` of every message as sealed,
on the publishing thread, whether or not it went on the wire (``ecg-monitor --web`` feeds its page so,
without encoding and decoding its own bus). A tap that raises is logged and counted in ``tap_failures``;
the bus goes on. Waveform strips can go to the taps only (``AlertBus.wave(..., send=False)``).

Vitals: ``active_alarms`` of a vitals body lists the stream's active technical
alarms after the rhythm alarms the vitals carry; the bus knows them from the
alarm transitions it published.

Sample indices: events come in the stream's indices; each publishing method
takes a ``locate`` lookup (:mod:`monitor.outputs._located`) and publishes the
device's own indices, with ``boot`` and ``segment`` once the stream has begun
a second segment (see :mod:`monitor.protocol`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq

from monitor.alarms import AlarmEvent, Vitals
from monitor.errors import ConfigError, FrameError
from monitor.outputs._located import Locate, stream_index
from monitor.outputs._wave import WaveChunk
from monitor.protocol import (
    SCHEMA,
    ack_body,
    alarm_body,
    beat_body,
    check_body,
    decode_message,
    encode_message,
    seal,
    snapshot_body,
    status_body,
    topic_of,
    vitals_body,
    wave_body,
)
from monitor.transport import Authenticator, CurveConfig, secure_bind, sender_of, split_endpoint

__all__ = ["SCHEMA_VERSION", "AlertBus", "alarm_body", "decode_snapshot", "located_alarm_body", "monitor_id"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = SCHEMA


def monitor_id() -> str:
    """An id for this monitor instance: host, process, start time and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}-{secrets.token_hex(3)}"


def located_alarm_body(event: AlarmEvent, locate: Locate = stream_index) -> dict[str, Any]:
    """:func:`alarm_body` of ``event`` with the device's own indices (and their segments) from ``locate``."""
    at = locate(event.stream, event.sample)
    onset = at if event.onset_sample == event.sample else locate(event.stream, event.onset_sample)
    return alarm_body(
        event,
        sample=at.sample,
        onset_sample=onset.sample,
        boot=at.boot,
        segment=at.label,
        onset_boot=onset.boot,
        onset_segment=onset.label,
    )


class AlertBus:
    """Publishes on an XPUB socket bound at ``endpoint``, answers snapshots on a ROUTER bound at
    ``snapshot_endpoint`` (None: :meth:`default_snapshot_endpoint`); see the module docstring."""

    SNAPSHOT = b"snapshot"
    """The first frame of a snapshot request and of its reply."""
    ACK = b"ack"
    """The first frame of an acknowledgement request and of its reply."""
    MAX_PREFIXES = 32
    MAX_PREFIX_BYTES = 256
    REQUESTS_PER_TURN = 64
    """Snapshot requests answered per :meth:`serve_subscriptions` call (the rest wait for the next)."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        snapshot_endpoint: str | None = None,
        monitor: str | None = None,
        clock: Callable[[], float] = time.time,
        sndhwm: int = 100_000,
        curve: CurveConfig | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.monitor = monitor or monitor_id()
        self.clock = clock
        self.sock = context.socket(zmq.XPUB)
        self.router = context.socket(zmq.ROUTER)
        try:
            for sock in (self.sock, self.router):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, sndhwm)
            self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            self.sock.setsockopt(zmq.XPUB_NODROP, 1)
            self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # an unreachable asker is an error, not silence
            snapshot_endpoint = snapshot_endpoint or self.default_snapshot_endpoint(endpoint)
            self.endpoint = secure_bind(self.sock, endpoint, curve, authenticator)
            self.snapshot_endpoint = secure_bind(self.router, snapshot_endpoint, curve, authenticator)
        except BaseException:
            self.close()
            raise
        self._authorizer = authenticator.authorizer if curve is not None and authenticator is not None else None
        self._seq: Counter[str] = Counter()
        self._active: dict[str, dict[str, dict[str, Any]]] = {}  # stream -> alarm_id -> last body (unsealed)
        self.taps: list[Callable[[str, dict[str, Any]], None]] = []
        self.tap_failures = 0
        self.sent = 0
        self.dropped = 0
        self.subscriptions = 0
        self.snapshots = 0
        """Snapshot replies sent."""
        self.snapshot_items = 0
        self.snapshots_refused: Counter[str] = Counter()
        """Refused snapshot requests by reason: request, role, unauthenticated, key_revoked, unsent."""
        self.acks_refused: Counter[str] = Counter()
        """Refused acknowledgement requests by reason: request, not_active, role, unauthenticated, key_revoked."""
        self._acks: list[tuple[str, str, str, float]] = []  # accepted, for the monitor: stream, alarm, by, at

    @staticmethod
    def default_snapshot_endpoint(endpoint: str) -> str:
        """The snapshot endpoint beside bus ``endpoint``: the next port for ``tcp://`` (a wildcard port stays
        one), ``.snapshot`` appended for ``ipc://`` and ``inproc://``; a :class:`ConfigError` otherwise."""
        transport, address = split_endpoint(endpoint)
        if transport in ("ipc", "inproc"):
            return f"{endpoint}.snapshot"
        host, sep, port = address.rpartition(":")
        if transport != "tcp" or not sep or not host:
            raise ConfigError(f"no default snapshot endpoint beside {endpoint!r}; give one")
        if port in ("*", "0"):
            return f"tcp://{host}:{port}"
        if not port.isdigit() or not 0 < int(port) < 65535:
            raise ConfigError(f"no default snapshot endpoint beside {endpoint!r} (port {port!r}); give one")
        return f"tcp://{host}:{int(port) + 1}"

    # ------------------------------------------------------------ publish
    def _publish(self, topic: str, body: dict[str, Any], *, send: bool = True) -> None:
        self._seq[topic] += 1
        seal(body, seq=self._seq[topic], time=self.clock(), monitor=self.monitor)
        for tap in self.taps:
            try:
                tap(topic, body)
            except Exception:
                self.tap_failures += 1
                log.exception("alert bus: an in-process reader failed on %s", topic)
        if not send:
            return
        try:
            self.sock.send_multipart(encode_message(topic, body), flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def alarm(self, event: AlarmEvent, locate: Locate = stream_index) -> dict[str, Any]:
        """Publish an alarm transition; returns the body sent (for the alarm log)."""
        body = located_alarm_body(event, locate)
        table = self._active.setdefault(event.stream, {})
        if event.state == "end":
            table.pop(event.alarm_id, None)
        else:
            table[event.alarm_id] = body
        if not table:
            del self._active[event.stream]
        self._publish(topic_of(body), dict(body))
        return body

    def beat(
        self,
        stream: str,
        sample: int,
        fs: float,
        label: str,
        rr_prev: float | None,
        latency_s: float,
        locate: Locate = stream_index,
    ) -> None:
        at = locate(stream, sample)
        body = beat_body(stream, at.sample, fs, label, rr_prev, latency_s, boot=at.boot, segment=at.label)
        self._publish(topic_of(body), body)

    def vitals(self, v: Vitals, locate: Locate = stream_index) -> None:
        """Publish a stream's vitals; ``active_alarms`` gets the stream's active technical alarms too."""
        at = locate(v.stream, v.sample)
        active = list(dict.fromkeys([*v.active, *self.technical_kinds(v.stream)]))
        body = vitals_body(
            v.stream,
            at.sample,
            v.fs,
            hr=v.hr,
            pvc_per_min=v.pvc_per_min,
            quality=v.quality,
            active_alarms=active,
            boot=at.boot,
            segment=at.label,
        )
        self._publish(topic_of(body), body)

    def wave(
        self,
        chunk: WaveChunk,
        lead: str = "",
        locate: Locate = stream_index,
        *,
        send: bool = True,
        monitored: bool = True,
    ) -> None:
        """Publish a waveform strip on ``wave/<stream>/`` (its sample in the device's own indices); ``send``
        False: to the in-process taps only; ``monitored`` False: a second lead, shown only."""
        at = locate(chunk.stream, chunk.sample)
        body = wave_body(
            chunk.stream,
            at.sample,
            chunk.fs,
            chunk.source_fs,
            chunk.values,
            lead=lead,
            monitored=monitored,
            boot=at.boot,
            segment=at.label,
        )
        self._publish(topic_of(body), body, send=send)

    def ack(self, stream: str, alarm_id: str, by: str, at: float) -> None:
        """Publish that ``by`` acknowledged the active alarm ``alarm_id`` (on ``ack/<stream>/``)."""
        body = ack_body(stream, alarm_id, by, at)
        self._publish(topic_of(body), body)

    def status(self, fields: Mapping[str, Any]) -> None:
        body = status_body({**fields, "snapshot_endpoint": self.snapshot_endpoint})
        self._publish(topic_of(body), body)

    def technical_kinds(self, stream: str) -> list[str]:
        """The kinds of the stream's active technical alarms, in the order they began."""
        table = self._active.get(stream, {})
        return [b["kind"] for b in table.values() if b["category"] == "technical"]

    # ------------------------------------------------------------ subscriptions and snapshots
    def serve_subscriptions(self) -> int:
        """Count new subscriptions, then answer waiting snapshot requests; returns how many subscriptions arrived.

        Subscriptions are taken first, so a bridge that subscribed before asking is subscribed by the time
        its snapshot is taken (when both arrived by then).
        """
        n = 0
        while True:
            try:
                msg = self.sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg and msg[0] == 1:  # not an unsubscription
                n += 1
        self.subscriptions += n
        for _ in range(self.REQUESTS_PER_TURN):
            try:
                frames = self.router.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._answer(frames)
        return n

    def take_acks(self) -> list[tuple[str, str, str, float]]:
        """The acknowledgements accepted since the last call: ``(stream, alarm_id, by, at)``."""
        acks, self._acks = self._acks, []
        return acks

    def _answer(self, frames: list[zmq.Frame]) -> None:
        envelope = [frames[0].bytes]
        request = [f.bytes for f in frames[1:]]
        if request[:1] == [b""]:  # a REQ asker's delimiter, echoed
            envelope.append(b"")
            request = request[1:]
        if request[:1] == [self.ACK]:
            self._answer_ack(envelope, frames, request[1:])
            return
        error: tuple[str, str] | None = None
        prefixes: list[str] = []
        if self._authorizer is not None:
            reason = self._authorizer.check_role(sender_of(frames[-1]), "bridge", "monitor")
            if reason is not None:
                error = (reason, "snapshots are for keys of role bridge or monitor")
        if error is None:
            try:
                prefixes = self._prefixes(request)
            except ValueError as exc:
                error = ("request", str(exc))
        now = self.clock()
        header: dict[str, Any] = {"schema": SCHEMA, "type": "snapshot", "time": now, "monitor": self.monitor}
        parts: list[bytes] = []
        if error is not None:
            self.snapshots_refused[error[0]] += 1
            if self.snapshots_refused[error[0]] == 1:
                log.warning("refused a snapshot request (%s): %s; further ones are counted", *error)
            header.update(topics=[], seq={}, items=0, error=error[0], text=error[1])
        else:
            seqs = {t: n for t, n in self._seq.items() if t.startswith("alarm/") and _matches(t, prefixes)}
            for table in self._active.values():
                for body in table.values():
                    topic = topic_of(body)
                    if topic in seqs:
                        item = seal(snapshot_body(body), seq=seqs[topic], time=now, monitor=self.monitor)
                        parts += encode_message(topic, item)
            header.update(topics=prefixes, seq=seqs, items=len(parts) // 2, error=None)
        reply = [*envelope, self.SNAPSHOT, json.dumps(header, separators=(",", ":")).encode(), *parts]
        try:
            self.router.send_multipart(reply, flags=zmq.NOBLOCK)
        except zmq.ZMQError:  # the asker left, or its queue is full: it will ask again
            self.snapshots_refused["unsent"] += 1
            return
        if error is None:
            self.snapshots += 1
            self.snapshot_items += len(parts) // 2

    def _answer_ack(self, envelope: list[bytes], frames: list[zmq.Frame], request: list[bytes]) -> None:
        error: tuple[str, str] | None = None
        if self._authorizer is not None:
            reason = self._authorizer.check_role(sender_of(frames[-1]), "bridge", "monitor")
            if reason is not None:
                error = (reason, "acknowledgements are for keys of role bridge or monitor")
        ack: tuple[str, str, str, float] | None = None
        if error is None:
            try:
                ack = _ack_request(request)
            except ValueError as exc:
                error = ("request", str(exc))
        if ack is not None and ack[1] not in self._active.get(ack[0], {}):
            error = ("not_active", f"no active alarm {ack[1]!r} on stream {ack[0]!r}")
        if error is None and ack is not None:
            self._acks.append(ack)
            reply: dict[str, Any] = {"ok": True}
        else:
            assert error is not None
            self.acks_refused[error[0]] += 1
            reply = {"ok": False, "error": error[0], "text": error[1]}
        with contextlib.suppress(zmq.ZMQError):  # the asker left: it hears nothing (the alarm stays unacknowledged)
            self.router.send_multipart([*envelope, self.ACK, json.dumps(reply).encode()], flags=zmq.NOBLOCK)

    def _prefixes(self, request: list[bytes]) -> list[str]:
        if not request or request[0] != self.SNAPSHOT:
            raise ValueError(f"a snapshot request starts with the frame {self.SNAPSHOT.decode()!r}")
        raw = request[1:]
        if len(raw) > self.MAX_PREFIXES:
            raise ValueError(f"at most {self.MAX_PREFIXES} topic prefixes, got {len(raw)}")
        try:
            prefixes = [p.decode("utf-8") for p in raw]
        except UnicodeDecodeError:
            raise ValueError("a topic prefix is not UTF-8") from None
        if any(len(p) > self.MAX_PREFIX_BYTES for p in raw):
            raise ValueError(f"a topic prefix is over {self.MAX_PREFIX_BYTES} bytes")
        return prefixes

    @property
    def active_alarms(self) -> int:
        return sum(len(table) for table in self._active.values())

    def close(self) -> None:
        self.sock.close(linger=0)
        self.router.close(linger=0)


def _ack_request(request: list[bytes]) -> tuple[str, str, str, float]:
    """``(stream, alarm_id, by, at)`` of an acknowledgement request's frames; ``ValueError`` saying what is wrong."""
    if len(request) != 1 or len(request[0]) > 4096:
        raise ValueError("an acknowledgement is one JSON object of at most 4096 bytes after the frame 'ack'")
    try:
        body = json.loads(request[0])
    except ValueError:
        raise ValueError("the acknowledgement is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the acknowledgement is not a JSON object")
    stream, alarm_id, by, at = (body.get(k) for k in ("stream", "alarm_id", "by", "at"))
    texts = (stream, alarm_id, by)
    if not all(isinstance(t, str) and 0 < len(t) <= 256 for t in texts):
        raise ValueError("stream, alarm_id and by must be strings of 1 to 256 characters")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError("at must be a number (Unix seconds)")
    return str(stream), str(alarm_id), str(by)[:64], float(at)


def _matches(topic: str, prefixes: list[str]) -> bool:
    """Whether ``topic`` starts with one of ``prefixes`` (no prefix: every topic)."""
    return not prefixes or any(topic.startswith(p) for p in prefixes)


def decode_snapshot(parts: Sequence[bytes]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Check a snapshot reply, ``[b"snapshot", header, topic, body, ...]``; returns the header and the
    ``(topic, body)`` items, or raises :class:`FrameError` (``frames``, ``json``, ``field``, ``topic``)."""
    if len(parts) < 2 or len(parts) % 2 or bytes(parts[0]) != AlertBus.SNAPSHOT:
        raise FrameError("frames", "a snapshot reply is b'snapshot', a header, then topic and body pairs")
    try:
        header = json.loads(bytes(parts[1]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("json", f"the snapshot header is not UTF-8 JSON ({exc})") from None
    check_body(header)
    if header["type"] != "snapshot":
        raise FrameError("type", f"a snapshot reply has a snapshot header, not {header['type']!r}")
    items = [decode_message(parts[i : i + 2]) for i in range(2, len(parts), 2)]
    if header["items"] != len(items):
        raise FrameError("field", f"the snapshot header counts {header['items']} items, {len(items)} came")
    for topic, body in items:
        if body["type"] != "alarm" or body["state"] != "active" or body["monitor"] != header["monitor"]:
            raise FrameError("field", f"a snapshot item on {topic} is not an active alarm of {header['monitor']}")
    return header, items
