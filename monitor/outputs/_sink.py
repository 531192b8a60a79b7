"""Sinks: where the monitor's decisions go, behind one small protocol.

The monitor hands every labelled beat, alarm transition, vitals update,
rhythm change, technical alarm and stream end to :class:`Sinks`, which passes
it to each registered :class:`Sink` in order. A sink overrides only the events
it cares about (the base class ignores the rest). The bus, the alarm log, the
annotation files, the live view and the log lines are sinks; scoring runs add
an :class:`AlarmRecorder`. A new output is a new ``Sink`` subclass registered
with ``Monitor.add_sink``: nothing else in the monitor changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from engine import LabeledBeat
from monitor.alarms import AlarmEvent, Vitals
from monitor.detect import TechnicalAlarm
from monitor.outputs._alarmlog import AlarmLog
from monitor.outputs._annotations import AnnotationWriter
from monitor.outputs._bus import AlertBus, alarm_body
from monitor.outputs._view import LiveView

__all__ = [
    "AlarmLogSink",
    "AlarmRecorder",
    "AnnotationSink",
    "BusSink",
    "LogLineSink",
    "Sink",
    "Sinks",
    "ViewSink",
]

log = logging.getLogger("monitor.alarms")


class Sink:
    """One output of the monitor. Every method is optional: the defaults ignore the event."""

    def on_stream_start(self, stream: str, fs: float) -> None:
        """A new stream appeared (its sample rate is known)."""

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        """Labelled beats (``now``: the monitor clock when the labels were delivered)."""

    def on_alarm(self, event: AlarmEvent) -> None:
        """An alarm transition (onset, update or end), clinical or technical."""

    def on_vitals(self, vitals: Vitals) -> None:
        """A heart-rate / rhythm update of one stream."""

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        """The stream's rhythm (the most serious active rhythm alarm's aux note) changed at ``sample``."""

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        """A signal-quality or ingest technical alarm began or ended (the sample-accurate record of it)."""

    def on_stream_end(self, stream: str) -> None:
        """The stream ended and every beat and alarm of it has been delivered."""

    def on_stream_forgotten(self, stream: str) -> None:
        """The monitor dropped an ended stream from its tables (its id may start a new stream)."""

    def close(self) -> None:
        """Release what the sink holds."""


class Sinks(Sink):
    """Fans each event out to the registered sinks, in registration order."""

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def on_stream_start(self, stream: str, fs: float) -> None:
        for s in self.sinks:
            s.on_stream_start(stream, fs)

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        for s in self.sinks:
            s.on_beats(beats, now)

    def on_alarm(self, event: AlarmEvent) -> None:
        for s in self.sinks:
            s.on_alarm(event)

    def on_vitals(self, vitals: Vitals) -> None:
        for s in self.sinks:
            s.on_vitals(vitals)

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        for s in self.sinks:
            s.on_rhythm(stream, fs, sample, aux)

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        for s in self.sinks:
            s.on_technical(alarm, fs)

    def on_stream_end(self, stream: str) -> None:
        for s in self.sinks:
            s.on_stream_end(stream)

    def on_stream_forgotten(self, stream: str) -> None:
        for s in self.sinks:
            s.on_stream_forgotten(stream)

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class BusSink(Sink):
    """Alarms, beats and vitals on the alert bus (the bus itself is closed by its owner)."""

    def __init__(self, bus: AlertBus) -> None:
        self.bus = bus

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        for lb in beats:
            b = lb.beat
            self.bus.beat(b.stream, b.sample, b.fs, lb.label, b.rr_prev, now - b.ready_at)

    def on_alarm(self, event: AlarmEvent) -> None:
        self.bus.alarm(event)

    def on_vitals(self, vitals: Vitals) -> None:
        self.bus.vitals(vitals)


class AlarmLogSink(Sink):
    """Every alarm transition as one committed row of the SQLite alarm log."""

    def __init__(self, alarm_log: AlarmLog, wall_clock: Callable[[], float] = time.time) -> None:
        self.alarm_log = alarm_log
        self.wall_clock = wall_clock

    def on_alarm(self, event: AlarmEvent) -> None:
        self.alarm_log.record(dict(alarm_body(event), time=self.wall_clock()))

    def close(self) -> None:
        self.alarm_log.close()


class AnnotationSink(Sink):
    """Beat labels, rhythm changes and technical alarms as WFDB annotation files (one per stream)."""

    def __init__(self, writer: AnnotationWriter) -> None:
        self.writer = writer

    def on_stream_start(self, stream: str, fs: float) -> None:
        self.writer.register(stream, fs)

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        self.writer.add(list(beats))

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self.writer.add_rhythm(stream, fs, sample, aux)

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        self.writer.add_technical(alarm, fs)

    def on_stream_end(self, stream: str) -> None:
        self.writer.write(stream)

    def on_stream_forgotten(self, stream: str) -> None:
        self.writer.write(stream)
        self.writer.forget(stream)

    def close(self) -> None:
        self.writer.write_all()


class ViewSink(Sink):
    """The live console view's beat, alarm and vitals feed (its table is redrawn by the monitor loop)."""

    def __init__(self, view: LiveView) -> None:
        self.view = view

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        self.view.on_beats(beats)

    def on_alarm(self, event: AlarmEvent) -> None:
        self.view.on_alarm(event)

    def on_vitals(self, vitals: Vitals) -> None:
        self.view.on_vitals(vitals)


class LogLineSink(Sink):
    """A log line per clinical alarm onset and end (warnings for high priority) and per technical alarm."""

    def on_alarm(self, event: AlarmEvent) -> None:
        if event.category == "clinical" and event.state in ("onset", "end"):
            level = logging.WARNING if event.priority == "high" else logging.INFO
            at = event.sample / event.fs
            log.log(level, "stream %s: %s %s (%s) at %.1f s", event.stream, event.text, event.state, event.priority, at)

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        state = "ended" if alarm.end is not None else "raised"
        at = (alarm.end if alarm.end is not None else alarm.onset) / fs
        log.warning("stream %s: technical alarm %r %s at %.1f s", alarm.stream, alarm.kind, state, at)


class AlarmRecorder(Sink):
    """Keeps every alarm transition in order (scoring runs and tests read ``events``)."""

    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    def on_alarm(self, event: AlarmEvent) -> None:
        self.events.append(event)
