"""The alert bus: alarms, beat labels, vitals and status published over ZeroMQ.

The monitor binds an XPUB socket; bridges connect SUB sockets and subscribe to
topics (``alarm/<stream>/``, ``beat/<stream>/``, ``vitals/<stream>/``,
``status/``; a prefix such as ``alarm/`` takes every stream). Each message is
two frames: the topic and a JSON object carrying ``schema`` (1), ``type``,
a per-topic ``seq`` and the publication ``time``; :mod:`monitor.protocol` builds
the bodies, its JSON Schema ``monitor/protocol/schema/alert-bus-v1.schema.json``
describes them and the README documents it.

Last-value cache: the socket reports every subscription (``XPUB_VERBOSE``);
when one arrives, every active alarm whose topic matches it is published
again as a snapshot (``state: "active"``, ``snapshot: true``), so a bridge that
joins or restarts mid-alarm learns of it at once. Sends never block: a message
that would exceed a slow subscriber's queue is counted in ``dropped`` (reported
in status) instead of stalling the monitor. With CURVE keys, only bridges whose
public keys are authorized can subscribe, and the traffic is encrypted.

Sample indices: events come in the stream's indices; each publishing method
takes a ``locate`` lookup (:mod:`monitor.outputs._located`) and publishes the
device's own indices, with ``boot`` and ``segment`` once the stream has begun
a second segment (see :mod:`monitor.protocol`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import zmq

from monitor.alarms import AlarmEvent, Vitals
from monitor.outputs._located import Locate, stream_index
from monitor.protocol import (
    SCHEMA,
    alarm_body,
    beat_body,
    encode_message,
    seal,
    snapshot_body,
    status_body,
    topic_of,
    vitals_body,
)
from monitor.transport import Authenticator, CurveConfig, secure_bind

__all__ = ["SCHEMA_VERSION", "AlertBus", "alarm_body", "located_alarm_body", "monitor_id"]

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
    """Publishes on an XPUB socket bound at ``endpoint``; see the module docstring."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        monitor: str | None = None,
        clock: Callable[[], float] = time.time,
        sndhwm: int = 100_000,
        curve: CurveConfig | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.monitor = monitor or monitor_id()
        self.clock = clock
        self.sock = context.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, sndhwm)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        try:
            self.endpoint = secure_bind(self.sock, endpoint, curve, authenticator)
        except BaseException:
            self.sock.close(linger=0)
            raise
        self._seq: Counter[str] = Counter()
        self._active: dict[str, dict[str, Any]] = {}  # alarm_id -> last body, for the last-value cache
        self.sent = 0
        self.dropped = 0
        self.subscriptions = 0

    # ------------------------------------------------------------ publish
    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        self._seq[topic] += 1
        seal(body, seq=self._seq[topic], time=self.clock(), monitor=self.monitor)
        try:
            self.sock.send_multipart(encode_message(topic, body), flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def alarm(self, event: AlarmEvent, locate: Locate = stream_index) -> dict[str, Any]:
        """Publish an alarm transition; returns the body sent (for the alarm log)."""
        body = located_alarm_body(event, locate)
        if event.state == "end":
            self._active.pop(event.alarm_id, None)
        else:
            self._active[event.alarm_id] = body
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
        at = locate(v.stream, v.sample)
        body = vitals_body(
            v.stream,
            at.sample,
            v.fs,
            hr=v.hr,
            pvc_per_min=v.pvc_per_min,
            quality=v.quality,
            active_alarms=v.active,
            boot=at.boot,
            segment=at.label,
        )
        self._publish(topic_of(body), body)

    def status(self, fields: Mapping[str, Any]) -> None:
        body = status_body(fields)
        self._publish(topic_of(body), body)

    # ------------------------------------------------------------ last-value cache
    def serve_subscriptions(self) -> int:
        """Answer new subscriptions with snapshots of matching active alarms; returns how many arrived."""
        n = 0
        while True:
            try:
                msg = self.sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return n
            if not msg or msg[0] != 1:
                continue  # an unsubscription
            n += 1
            self.subscriptions += 1
            prefix = msg[1:].decode("utf-8", "replace")
            for body in list(self._active.values()):
                topic = topic_of(body)
                if topic.startswith(prefix):
                    self._publish(topic, snapshot_body(body))

    @property
    def active_alarms(self) -> int:
        return len(self._active)

    def close(self) -> None:
        self.sock.close(linger=0)
