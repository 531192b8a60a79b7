"""The alarm manager: the one table of active alarms, and the technical alarms the monitor itself raises.

Rhythm logic (:class:`RhythmAnalyzer`) decides clinical alarms per stream;
signal quality and ingest decide their technical alarms; the monitor decides
four more: ``signal_lost`` when a live device goes silent (the one wall-clock
decision), ``beats_shed`` when classification falls behind, ``engine_failed``
while the classifier is down, and the quality/ingest alarms passed through
:meth:`AlarmManager.technical`. Every transition goes through
:meth:`AlarmManager.emit`, which keeps the per-stream table of active alarms,
counts onsets by kind, tracks the rhythm annotation (``+`` aux) and hands the
event to the sinks. Each stream's alarm state is one :class:`StreamAlarms`,
so forgetting a stream forgets its alarms. :meth:`AlarmManager.end_all` closes a
stream's alarms, clinical and technical, with a stated reason (the stream
ended, its device fell silent, the monitor stopped): no alarm outlives its
stream or the monitor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.alarms._events import AlarmEvent
from monitor.detect import TechnicalAlarm
from monitor.vocabulary import ALARM_KINDS, NORMAL_AUX, rhythm_aux

__all__ = ["AlarmManager", "AlarmSink", "StreamAlarms"]


class AlarmSink(Protocol):
    """Where the manager sends transitions (the monitor's sinks)."""

    def on_alarm(self, event: AlarmEvent) -> None: ...

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None: ...

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None: ...


@dataclass
class StreamAlarms:
    """Alarm state of one stream: its active alarms (kind -> onset event) and its technical-alarm timers."""

    stream: str
    fs: float
    active: dict[str, AlarmEvent] = field(default_factory=dict)
    aux: str = NORMAL_AUX  # the rhythm annotation in force
    aux_at: int | None = None  # the sample of its latest change (rhythm annotations are strictly ordered)
    shed_last: float | None = None  # wall time of the last shed beat
    silent_since: float | None = None  # wall time of the last data, while the device is silent
    end_reason: str | None = None  # why the stream is being closed (device silent, monitor stopped); None: open


def _technical_text(kind: str) -> str:
    return ALARM_KINDS[kind].text if kind in ALARM_KINDS else kind.replace("_", " ").capitalize()


class AlarmManager:
    """Owns every stream's active alarms; raises and ends the monitor's own technical alarms."""

    def __init__(self, sink: AlarmSink, *, silence_s: float, shed_clear_s: float) -> None:
        self.sink = sink
        self.silence_s = silence_s
        self.shed_clear_s = shed_clear_s
        self.counts: dict[str, int] = {}  # onsets by kind since start

    def emit(self, alarms: StreamAlarms, events: Iterable[AlarmEvent]) -> None:
        """Record and publish transitions of one stream, in order."""
        for e in events:
            if e.state == "onset":
                alarms.active[e.kind] = e
                self.counts[e.kind] = self.counts.get(e.kind, 0) + 1
            elif e.state == "end":
                alarms.active.pop(e.kind, None)
            self.sink.on_alarm(e)
            if e.category == "clinical":
                aux = rhythm_aux(alarms.active)
                if aux != alarms.aux:
                    at = e.onset_sample if e.state == "onset" else e.sample
                    if alarms.aux_at is not None:  # never at or before the previous change (a back-dated onset)
                        at = max(at, alarms.aux_at + 1)
                    alarms.aux, alarms.aux_at = aux, at
                    self.sink.on_rhythm(e.stream, e.fs, at, aux)

    # ------------------------------------------------------------ quality and ingest alarms
    def technical(self, alarms: StreamAlarms, alarm: TechnicalAlarm) -> None:
        """A technical alarm decided by signal quality or ingest (onset, or onset and end together)."""
        self.sink.on_technical(alarm, alarms.fs)
        kind = alarm.kind.replace(" ", "_")
        onset = AlarmEvent(
            alarm.stream, kind, "onset", alarm.onset, alarm.onset, alarms.fs, _technical_text(kind),
            category="technical",
        )  # fmt: skip
        if alarm.end is None:
            self.emit(alarms, [onset])
            return
        reason = "condition cleared"
        if kind in alarms.active and alarms.end_reason is not None:  # ended by the stream's close
            reason = alarms.end_reason
        end = dataclasses.replace(onset, state="end", sample=alarm.end, end_reason=reason)
        self.emit(alarms, [end] if kind in alarms.active else [onset, end])

    # ------------------------------------------------------------ closing a stream
    def end_all(self, alarms: StreamAlarms, sample: int, reason: str) -> None:
        """End every alarm still active on a stream (clinical and technical) at ``sample``, with ``reason``.

        Called once a stream's rhythm logic has finished (its clinical alarms are
        ended there first), and for every stream when the monitor stops.
        """
        alarms.shed_last = None
        alarms.silent_since = None
        ends = [
            dataclasses.replace(e, state="end", sample=max(sample, e.sample), end_reason=reason)
            for e in alarms.active.values()
        ]
        self.emit(alarms, ends)

    # ------------------------------------------------------------ silence (wall clock: the one exception)
    def check_silence(self, alarms: StreamAlarms, last_arrival: float, now: float, sample: int) -> None:
        """``signal_lost`` after ``silence_s`` without data from a live device; ended when data resumes."""
        silent = now - last_arrival >= self.silence_s
        if silent and alarms.silent_since is None:
            alarms.silent_since = last_arrival
            if "signal_lost" not in alarms.active:
                text = f"Signal lost: no data from the device for {self.silence_s:g} s"
                event = AlarmEvent(
                    alarms.stream, "signal_lost", "onset", sample, sample, alarms.fs, text,
                    {"silent_s": self.silence_s}, None, "technical",
                )  # fmt: skip
                self.emit(alarms, [event])
        elif not silent and alarms.silent_since is not None:
            alarms.silent_since = None
            onset = alarms.active.get("signal_lost")
            if onset is not None and onset.text.startswith("Signal lost: no data"):
                self.emit(alarms, [dataclasses.replace(onset, state="end", sample=sample, end_reason="data resumed")])

    # ------------------------------------------------------------ shedding
    def on_shed(self, alarms: StreamAlarms, sample: int, now: float) -> None:
        """A beat of this stream was shed (delivered unclassified) at ``sample``."""
        alarms.shed_last = now
        if "beats_shed" not in alarms.active:
            text = "Beats shed: classification falling behind"
            event = AlarmEvent(alarms.stream, "beats_shed", "onset", sample, sample, alarms.fs, text)
            self.emit(alarms, [dataclasses.replace(event, category="technical")])

    def end_shedding(self, alarms: StreamAlarms, now: float, sample: int) -> None:
        """End ``beats_shed`` once no beat was shed for ``shed_clear_s``."""
        if alarms.shed_last is None or now - alarms.shed_last < self.shed_clear_s:
            return
        alarms.shed_last = None
        onset = alarms.active.get("beats_shed")
        if onset is not None:
            self.emit(alarms, [dataclasses.replace(onset, state="end", sample=sample, end_reason="caught up")])

    # ------------------------------------------------------------ engine
    def engine_failed(self, alarms: StreamAlarms, sample: int) -> None:
        """The classifier failed on a batch holding a beat of this stream (at ``sample``)."""
        if "engine_failed" not in alarms.active:
            text = "Arrhythmia analysis unavailable: engine failed"
            event = AlarmEvent(
                alarms.stream, "engine_failed", "onset", sample, sample, alarms.fs, text, {}, None, "technical"
            )
            self.emit(alarms, [event])

    def engine_recovered(self, alarms: StreamAlarms, sample: int) -> None:
        onset = alarms.active.get("engine_failed")
        if onset is not None:
            end = dataclasses.replace(onset, state="end", sample=sample, end_reason="engine recovered")
            self.emit(alarms, [end])

    # ------------------------------------------------------------ outputs
    def output_failed(self, alarms: StreamAlarms, sample: int, sink: str, reason: str) -> None:
        """An output (annotation file, alarm log, bus, a sink) failed for this stream: ``output_failed``, once.

        It lasts while the stream does (what the output lost is not written later); ``reason`` is in the log.
        """
        if "output_failed" not in alarms.active:
            event = AlarmEvent(
                alarms.stream, "output_failed", "onset", sample, sample, alarms.fs, f"Output failed: {sink}",
                {}, None, "technical",
            )  # fmt: skip
            self.emit(alarms, [event])
