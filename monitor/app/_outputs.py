"""Opening the monitor's configured outputs: the alarm log and its review strips, the alert bus and its strips."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from monitor.outputs import (
    AlarmLog,
    AlarmLogSink,
    AlertBus,
    BusSink,
    StripRecorder,
    WaveChunk,
    WaveTap,
    store_ack,
    store_strip,
)

if TYPE_CHECKING:
    from monitor.app._monitor import Monitor

__all__ = ["Acknowledgements", "open_outputs"]

log = logging.getLogger("monitor.app._monitor")


def open_outputs(m: Monitor) -> None:
    """The alarm log (with its review strips) and the alert bus (with its strips for drawing), as configured."""
    if m.config.alarm_log is not None:
        m.alarm_log = AlarmLog(m.config.alarm_log, run_id=m.id)
        closed = m.alarm_log.close_orphans("monitor restarted", time.time())  # only runs that are over
        if closed:
            log.warning("alarm log: closed %d alarm(s) left open by runs that are over", closed)
        m.sinks.add(AlarmLogSink(m.alarm_log, locate=m.locate))
        log_ = m.alarm_log
        m.strips = StripRecorder(lambda strip: store_strip(log_, strip, time.time()), locate=m.locate)
        m.sinks.add(m.strips)
    if m.config.alerts is not None:
        intake = m.intake
        m.bus = AlertBus(m._ctx, m.config.alerts, monitor=m.id, curve=intake.curve, authenticator=intake.auth)
        m.alerts_endpoint = m.bus.endpoint
        m.sinks.sinks.insert(0, BusSink(m.bus, m.locate))
        m.bus.taps.extend(m.bus_taps)
        if m.config.wave or m.bus_taps:  # strips on the wire only when asked for; in-process readers get them
            bus, on_wire = m.bus, m.config.wave

            def publish(chunk: WaveChunk, lead: str, *, monitored: bool = True) -> None:
                send = on_wire and monitored  # a second lead goes to the in-process readers only
                bus.wave(chunk, lead, m.locate, send=send, monitored=monitored)

            m.wave = WaveTap(publish, clock=m.clock, second=m.second_lead_for)


class Acknowledgements:
    """Alarms acknowledged at the central station (``--web``), handed from the web server's thread to the
    monitor's: each is published on the bus (``ack/<stream>/``) and kept in the alarm log's ``acks``."""

    def __init__(self) -> None:
        self._waiting: deque[tuple[dict[str, Any], str, str, float]] = deque()

    def add(self, alarm: dict[str, Any], stream: str, by: str, at: float) -> None:
        """From any thread: ``by`` acknowledged ``alarm`` (its page view: ``id``...) of ``stream`` at ``at``."""
        self._waiting.append((alarm, stream, by, at))

    def drain(self, m: Monitor) -> int:
        """On the monitor's thread: publish and log what was acknowledged since; returns how many."""
        n = 0
        while self._waiting:
            alarm, stream, by, at = self._waiting.popleft()
            if m.bus is not None:
                m.bus.ack(stream, str(alarm["id"]), by, at)
            if m.alarm_log is not None:
                store_ack(m.alarm_log, m.id, str(alarm["id"]), stream, by, at)
            n += 1
        return n
