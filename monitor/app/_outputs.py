"""Opening the monitor's configured outputs: the alarm log and its review strips, the alert bus and its strips."""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING

from monitor.outputs import AlarmLog, AlarmLogSink, AlertBus, BusSink, StripRecorder, WaveTap, store_strip

if TYPE_CHECKING:
    from monitor.app._monitor import Monitor

__all__ = ["open_outputs"]

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
        if m.config.wave:
            m.wave = WaveTap(functools.partial(m.bus.wave, locate=m.locate))
