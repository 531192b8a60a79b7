"""The central station's bus readers, feeding :class:`WardState`.

:class:`BusFeed` reads another monitor's alert bus on a thread of its own: it is the reference bridge
(:func:`monitor.outputs.serve` with an :class:`AlertBridge`): it subscribes to the alarm, vitals, wave and
beat topics, joins with a snapshot of the active alarms, validates every message against the schema
(rejections counted), and asks again after a gap or a monitor restart. :class:`LocalFeed` takes this
process's own bus in-process (``ecg-monitor --web``): the same bridge logic, with nothing encoded, sent,
decoded or checked again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import zmq

from monitor.outputs import AlertBridge, AlertBus, BridgeEvent, CommandRunner, serve, snapshot_dealer
from monitor.transport import CurveConfig, secure_connect
from monitor.web._ward import WardState

__all__ = ["TOPICS", "BusFeed", "LocalFeed"]

log = logging.getLogger(__name__)

#: What the central station subscribes to.
TOPICS = ("alarm/", "vitals/", "wave/", "beat/", "ack/")

Publish = Callable[[list[dict[str, Any]]], None]


class _WardOutput:
    """What :func:`serve` writes to: the ward, and through ``publish`` the open pages."""

    runner: CommandRunner | None = None

    def __init__(self, source: str, bridge: AlertBridge, ward: WardState, publish: Publish) -> None:
        self.source, self.bridge, self.ward, self.publish = source, bridge, ward, publish

    def emit(self, event: BridgeEvent) -> None:
        touched: set[str] = {str(a["stream"]) for a in event.dropped}
        body = event.body
        if body is not None and body.get("type") == "alarm":
            touched.add(str(body["stream"]))
        if event.restarted:
            touched.update(self.ward.beds())
        active = {s: self.bridge.active_alarms(s) for s in touched}
        messages = self.ward.apply(self.source, body, active)  # an alarm's page message comes from ``active``
        if messages:
            self.publish(messages)

    def say(self, text: str) -> None:
        log.warning("%s: %s", self.source, text)


class BusFeed:
    """Reads one monitor's bus at ``endpoint`` into ``ward`` until :meth:`stop`; ``publish`` gets each
    batch of page messages (called on the reader's thread)."""

    def __init__(
        self,
        endpoint: str,
        ward: WardState,
        publish: Publish,
        *,
        curve: CurveConfig | None = None,
        snapshot_endpoint: str | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.ctx = context or zmq.Context.instance()
        self.bridge = AlertBridge()
        self.output = _WardOutput(endpoint, self.bridge, ward, publish)
        self._curve = curve
        self._snapshot = snapshot_endpoint or AlertBus.default_snapshot_endpoint(endpoint)
        self._stop = threading.Event()
        self._sock = self.ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        try:
            secure_connect(self._sock, endpoint, curve)  # raises for a bad endpoint: checked before serving
            for topic in TOPICS:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        except BaseException:
            self._sock.close(linger=0)
            raise
        self.bridge.want(*AlertBridge.alarm_prefixes(list(TOPICS)))
        self._thread = threading.Thread(target=self._run, name=f"bus {endpoint}", daemon=True)

    def _dealer(self) -> zmq.Socket[bytes]:
        return snapshot_dealer(self.ctx, self._snapshot, self._curve)

    def start(self) -> BusFeed:
        self._thread.start()
        return self

    def acknowledge(self, stream: str, alarm_id: str, by: str, at: float, timeout: float = 3.0) -> str | None:
        """Ask the monitor to record and publish an acknowledgement of its active alarm (any thread: a socket
        of its own); None when it did, else why not."""
        dealer = self._dealer()
        try:
            body = {"stream": stream, "alarm_id": alarm_id, "by": by, "at": at}
            dealer.send_multipart([AlertBus.ACK, json.dumps(body).encode()])
            if not dealer.poll(round(timeout * 1000), zmq.POLLIN):
                return f"the monitor at {self._snapshot} did not answer"
            reply = dealer.recv_multipart()
        finally:
            dealer.close(linger=0)
        try:
            answer = json.loads(reply[1]) if len(reply) == 2 and reply[0] == AlertBus.ACK else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return "the monitor's answer was not understood"
        if answer.get("ok") is True:
            return None
        return f"the monitor refused ({answer.get('error')}): {answer.get('text', '')}"

    def _run(self) -> None:
        try:
            serve(self._sock, self.bridge, self.output, stop=self._stop, snapshot=self._dealer)
        except Exception:  # a reader that dies must say so; the others go on
            log.exception("bus reader for %s stopped", self.endpoint)
        finally:
            self._sock.close(linger=0)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


class LocalFeed:
    """This process's own bus, in-process: a tap for :attr:`monitor.outputs.AlertBus.taps` that hands each
    message, as published and on the publishing thread, to ``ward`` (and the pages through ``publish``). It
    sees every message from the first, so it needs no snapshot and has no gap to ask about."""

    def __init__(self, ward: WardState, publish: Publish, source: str = "this monitor") -> None:
        self.bridge = AlertBridge()
        self.output = _WardOutput(source, self.bridge, ward, publish)

    def __call__(self, topic: str, body: dict[str, Any]) -> None:
        if topic.startswith(TOPICS):
            event = self.bridge.take(topic, body)
            if event is not None:
                self.output.emit(event)
