"""Alarm review strips: the ECG around each alarm onset, 10 s before to 10 s after, for the alarm log.

A nurse reviewing an alarm wants the ECG that raised it. :class:`StripRecorder` notes every onset and, once
its stream's ring buffer holds the samples up to 10 s after the onset (or the stream ends first), reads the
monitored lead from 10 s before to that point and hands a :class:`Strip` to ``store`` (the alarm log). The
ring buffer holds 30 s, so the 10 s before an onset are still there when the onset is decided (asystole, the
slowest, is decided seconds after its onset sample). Samples the device never sent are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from monitor.alarms import AlarmEvent
from monitor.outputs._bus import located_alarm_body
from monitor.outputs._located import Locate, stream_index
from monitor.outputs._sink import Sink
from monitor.outputs._wave import _Stream

__all__ = ["STRIP_AFTER_S", "STRIP_BEFORE_S", "Strip", "StripRecorder"]

STRIP_BEFORE_S = 10.0
STRIP_AFTER_S = 10.0


@dataclass(frozen=True)
class Strip:
    """The monitored lead (mV, NaN where there was no signal) at ``fs`` from device sample ``sample``."""

    alarm_id: str
    stream: str
    kind: str
    onset_sample: int  # the device's index of the onset
    sample: int  # the device's index of values[0]
    fs: float
    lead: str
    values: NDArray[np.float32]

    @property
    def seconds(self) -> float:
        return len(self.values) / self.fs


@dataclass
class _Pending:
    alarm_id: str
    kind: str
    onset: int  # stream index
    start: int
    stop: int


class StripRecorder(Sink):
    """Keeps the strip of every alarm onset (see the module docstring); :meth:`poll` with the streams."""

    name = "strips"

    def __init__(
        self,
        store: Callable[[Strip], None],
        locate: Locate = stream_index,
        before_s: float = STRIP_BEFORE_S,
        after_s: float = STRIP_AFTER_S,
    ) -> None:
        self.store = store
        self.locate = locate
        self.before_s, self.after_s = before_s, after_s
        self._pending: dict[str, list[_Pending]] = {}
        self._ended: set[str] = set()
        self.kept = 0

    def on_alarm(self, event: AlarmEvent) -> None:
        if event.state != "onset" or not math.isfinite(event.fs) or event.fs <= 0:
            return
        body = located_alarm_body(event, self.locate)
        self._pending.setdefault(event.stream, []).append(
            _Pending(
                alarm_id=str(body["alarm_id"]),
                kind=event.kind,
                onset=event.onset_sample,
                start=max(0, event.onset_sample - round(self.before_s * event.fs)),
                stop=event.onset_sample + round(self.after_s * event.fs),
            )
        )

    def on_stream_end(self, stream: str) -> None:
        if stream in self._pending:
            self._ended.add(stream)  # kept with what there is at the next poll

    def flush(self, streams: Iterable[_Stream]) -> int:
        """Keep every waiting strip now, with the samples there are (the monitor is stopping)."""
        streams = list(streams)
        self._ended.update(p.stream for p in streams)
        return self.poll(streams)

    def pending(self) -> int:
        return sum(len(v) for v in self._pending.values())

    def poll(self, streams: Iterable[_Stream]) -> int:
        """Keep the strips whose samples are all in (or whose stream ended); returns how many."""
        done = 0
        for proc in streams:
            waiting = self._pending.get(proc.stream)
            if not waiting:
                continue
            ring = proc.ring
            ended = proc.stream in self._ended
            left = []
            for p in waiting:
                if ring.end < p.stop and not ended:
                    left.append(p)
                    continue
                self.store(self._cut(proc, p))
                done += 1
            if left:
                self._pending[proc.stream] = left
            else:
                del self._pending[proc.stream]
                self._ended.discard(proc.stream)
        self.kept += done
        return done

    def _cut(self, proc: _Stream, p: _Pending) -> Strip:
        ring = proc.ring
        stop = min(p.stop, ring.end)
        values = np.full(max(0, stop - p.start), np.nan, dtype=np.float32)
        lo = max(p.start, ring.start)
        if stop > lo:
            values[lo - p.start :] = ring.read(lo, stop)[:, 0]
        return Strip(
            alarm_id=p.alarm_id,
            stream=proc.stream,
            kind=p.kind,
            onset_sample=self.locate(proc.stream, p.onset).sample,
            sample=self.locate(proc.stream, p.start).sample,
            fs=proc.fs,
            lead=proc.lead_name,
            values=values,
        )
