"""Sinks: where the monitor's decisions go, behind one small protocol.

The monitor hands every labelled beat, alarm transition, vitals update,
rhythm change, technical alarm and stream end to :class:`Sinks`, which passes
it to each registered :class:`Sink` in order. A sink overrides only the events
it cares about (the base class ignores the rest). The bus, the alarm log, the
annotation files, the live view and the log lines are sinks; scoring runs add
an :class:`AlarmRecorder`. A new output is a new ``Sink`` subclass registered
with ``Monitor.add_sink``: nothing else in the monitor changes.

A sink that raises loses neither the monitor nor the other sinks: :class:`Sinks`
catches the exception, counts it by (sink, stream) in ``Sinks.failures``, logs
the first one of each (sink, stream) with its reason, and queues it for the
monitor (:meth:`Sinks.take_failures`), which raises an ``output_failed``
technical alarm on the stream. Beats go to each sink one stream at a time, so
one stream's failure never keeps another stream's beats from a sink.

Sample indices: events carry the stream's monotonic indices (the rhythm logic
needs one clock). The sinks that write indices for others (bus, alarm log,
annotation files, live view, log lines) take a ``locate`` lookup
(:mod:`monitor.outputs._located`) and write the device's own indices; the
monitor passes its lookup to the sinks it builds. Sinks registered with
``Monitor.add_sink`` (an :class:`AlarmRecorder`, a test's) get the events as
they are.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from engine import LabeledBeat
from monitor.alarms import AlarmEvent, Vitals
from monitor.detect import TechnicalAlarm
from monitor.outputs._alarmlog import AlarmLog
from monitor.outputs._annotations import AnnotationWriter
from monitor.outputs._bus import AlertBus, located_alarm_body
from monitor.outputs._located import Locate, stream_index
from monitor.outputs._view import LiveView

__all__ = [
    "AlarmLogSink",
    "AlarmRecorder",
    "AnnotationSink",
    "BusSink",
    "LogLineSink",
    "Sink",
    "SinkFailure",
    "Sinks",
    "ViewSink",
]

log = logging.getLogger("monitor.alarms")
failure_log = logging.getLogger("monitor.outputs")

#: The stream of a failure that belongs to no stream (closing a sink).
NO_STREAM = ""


class SinkFailure(Exception):
    """Raised by a sink that failed for some streams only (``failures``: stream -> reason) and did the rest."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        super().__init__("; ".join(f"stream {s}: {r}" for s, r in self.failures.items()))


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


class Sink:
    """One output of the monitor. Every method is optional: the defaults ignore the event.

    ``name`` names the output in failure counts, logs and ``output_failed`` alarms
    (the class name when empty).
    """

    name = ""

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
    """Fans each event out to the registered sinks, in registration order, each sink's failures contained.

    ``failures`` counts the exceptions by (sink name, stream) since start;
    :meth:`take_failures` hands the monitor the failures not taken yet.
    """

    name = "sinks"

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.failures: Counter[tuple[str, str]] = Counter()
        self._pending: dict[tuple[str, str], str] = {}  # (stream, sink) -> reason, in order of failure

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def take_failures(self) -> list[tuple[str, str, str]]:
        """The (stream, sink name, reason) of each (stream, sink) that failed since the last call, oldest first.

        Failures of no stream (closing a sink) are counted and logged, not returned.
        """
        out = [(stream, sink, reason) for (stream, sink), reason in self._pending.items()]
        self._pending.clear()
        return out

    def _failed(self, sink: Sink, stream: str, reason: str) -> None:
        name = sink.name or type(sink).__name__
        self.failures[name, stream] += 1
        if self.failures[name, stream] == 1:
            where = f"stream {stream}" if stream != NO_STREAM else "closing"
            failure_log.error("%s: output %s failed: %s (later failures are counted, not logged)", where, name, reason)
        if stream != NO_STREAM:
            self._pending.setdefault((stream, name), reason)

    def _record(self, sink: Sink, stream: str, exc: Exception) -> None:
        if isinstance(exc, SinkFailure):
            for failed, reason in exc.failures.items():
                self._failed(sink, failed, reason)
        else:
            self._failed(sink, stream, _reason(exc))

    def _call(self, stream: str, call: Callable[[Sink], None]) -> None:
        for s in self.sinks:
            try:
                call(s)
            except Exception as exc:  # one output must never stop the monitor
                self._record(s, stream, exc)

    def on_stream_start(self, stream: str, fs: float) -> None:
        self._call(stream, lambda s: s.on_stream_start(stream, fs))

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        for stream, group in _by_stream(beats):
            for s in self.sinks:
                try:
                    s.on_beats(group, now)
                except Exception as exc:  # one output must never stop the monitor
                    self._record(s, stream, exc)

    def on_alarm(self, event: AlarmEvent) -> None:
        self._call(event.stream, lambda s: s.on_alarm(event))

    def on_vitals(self, vitals: Vitals) -> None:
        self._call(vitals.stream, lambda s: s.on_vitals(vitals))

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self._call(stream, lambda s: s.on_rhythm(stream, fs, sample, aux))

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        self._call(alarm.stream, lambda s: s.on_technical(alarm, fs))

    def on_stream_end(self, stream: str) -> None:
        self._call(stream, lambda s: s.on_stream_end(stream))

    def on_stream_forgotten(self, stream: str) -> None:
        self._call(stream, lambda s: s.on_stream_forgotten(stream))

    def close(self) -> None:
        self._call(NO_STREAM, lambda s: s.close())


def _by_stream(beats: Sequence[LabeledBeat]) -> list[tuple[str, Sequence[LabeledBeat]]]:
    """The beats split by stream (each stream's beats in order, streams in order of first beat)."""
    if not beats:
        return [(NO_STREAM, beats)]
    first = beats[0].beat.stream
    if all(lb.beat.stream == first for lb in beats):
        return [(first, beats)]
    groups: dict[str, list[LabeledBeat]] = {}
    for lb in beats:
        groups.setdefault(lb.beat.stream, []).append(lb)
    return list(groups.items())


class BusSink(Sink):
    """Alarms, beats and vitals on the alert bus (the bus itself is closed by its owner)."""

    name = "bus"

    def __init__(self, bus: AlertBus, locate: Locate = stream_index) -> None:
        self.bus = bus
        self.locate = locate

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        for lb in beats:
            b = lb.beat
            self.bus.beat(b.stream, b.sample, b.fs, lb.label, b.rr_prev, now - b.ready_at, self.locate)

    def on_alarm(self, event: AlarmEvent) -> None:
        self.bus.alarm(event, self.locate)

    def on_vitals(self, vitals: Vitals) -> None:
        self.bus.vitals(vitals, self.locate)


class AlarmLogSink(Sink):
    """Every alarm transition as one committed row of the SQLite alarm log."""

    name = "alarm_log"

    def __init__(
        self, alarm_log: AlarmLog, wall_clock: Callable[[], float] = time.time, locate: Locate = stream_index
    ) -> None:
        self.alarm_log = alarm_log
        self.wall_clock = wall_clock
        self.locate = locate

    def on_alarm(self, event: AlarmEvent) -> None:
        self.alarm_log.record(dict(located_alarm_body(event, self.locate), time=self.wall_clock()))

    def close(self) -> None:
        self.alarm_log.close()


class AnnotationSink(Sink):
    """Beat labels, rhythm changes and technical alarms as WFDB annotation files (one per stream and
    device index space)."""

    name = "annotations"

    def __init__(self, writer: AnnotationWriter, locate: Locate = stream_index) -> None:
        self.writer = writer
        self.locate = locate

    def on_stream_start(self, stream: str, fs: float) -> None:
        self.writer.register(stream, fs)

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        self.writer.add(list(beats), self.locate)

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self.writer.add_rhythm(stream, fs, sample, aux, self.locate)

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        self.writer.add_technical(alarm, fs, self.locate)

    def on_stream_end(self, stream: str) -> None:
        self.writer.write(stream)

    def on_stream_forgotten(self, stream: str) -> None:
        try:
            self.writer.write(stream)
        finally:  # the stream's id may start a new stream: never left with the old one's annotations
            self.writer.forget(stream)

    def close(self) -> None:
        """Write every file not up to date; a stream whose file fails does not keep the others from theirs."""
        failed: dict[str, str] = {}
        for stream in self.writer.unwritten():
            try:
                self.writer.write(stream)
            except Exception as exc:  # reported per stream below
                failed[stream] = _reason(exc)
        if failed:
            raise SinkFailure(failed)


class ViewSink(Sink):
    """The live console view's beat, alarm and vitals feed (its table is redrawn by the monitor loop)."""

    name = "view"

    def __init__(self, view: LiveView, locate: Locate = stream_index) -> None:
        self.view = view
        self.locate = locate

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        self.view.on_beats(beats, self.locate)

    def on_alarm(self, event: AlarmEvent) -> None:
        self.view.on_alarm(event, self.locate)

    def on_vitals(self, vitals: Vitals) -> None:
        self.view.on_vitals(vitals)


class LogLineSink(Sink):
    """A log line per clinical alarm onset and end (warnings for high priority) and per technical alarm."""

    name = "log"

    def __init__(self, locate: Locate = stream_index) -> None:
        self.locate = locate

    def _at(self, stream: str, sample: int, fs: float) -> str:
        """``12.3 s`` on the device's clock, with the device's run and index space once it has more than one."""
        at = self.locate(stream, sample)
        return f"{at.sample / fs:.1f} s{at.note}"

    def on_alarm(self, event: AlarmEvent) -> None:
        if event.category == "clinical" and event.state in ("onset", "end"):
            level = logging.WARNING if event.priority == "high" else logging.INFO
            at = self._at(event.stream, event.sample, event.fs)
            log.log(level, "stream %s: %s %s (%s) at %s", event.stream, event.text, event.state, event.priority, at)

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        state = "ended" if alarm.end is not None else "raised"
        at = self._at(alarm.stream, alarm.end if alarm.end is not None else alarm.onset, fs)
        log.warning("stream %s: technical alarm %r %s at %s", alarm.stream, alarm.kind, state, at)


class AlarmRecorder(Sink):
    """Keeps every alarm transition in order (scoring runs and tests read ``events``)."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    def on_alarm(self, event: AlarmEvent) -> None:
        self.events.append(event)
