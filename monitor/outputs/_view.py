"""Live console view: redraws in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from engine import LabeledBeat
from monitor.alarms import AlarmEvent, Vitals
from monitor.ingest import Ingest, StreamProcessor
from monitor.vocabulary import priority_rank

__all__ = ["LiveView", "stream_status"]

_RECENT = 24


def stream_status(proc: StreamProcessor, now_sample_gap_s: float = 10.0) -> str:
    """One word (or a few) for a stream's state."""
    st = proc.stats
    if st.error is not None:
        return "ERROR " + st.error
    if st.ended:
        return "ended"
    alarms = proc.quality.active_alarms
    if alarms:
        return "ALARM " + ", ".join(alarms)
    last = proc.last_peak if proc.last_peak is not None else proc.origin
    if (proc.samples_end - last) / proc.fs > now_sample_gap_s:
        return f"no beat for {(proc.samples_end - last) / proc.fs:.0f} s"
    notes = []
    if proc.quality.current != "clean":
        notes.append(proc.quality.current)
    if proc.tracker.samples_missing:
        notes.append(f"{proc.tracker.samples_missing} samples missing")
    return ", ".join(["ok", *notes])


@dataclass
class LiveView:
    """Per-stream heart rate, beats, recent labels and status.

    ``interactive`` (default: the output is a terminal) redraws a table in place
    every ``interval`` seconds; otherwise a plain line per stream is printed every
    ``interval`` seconds and when a stream ends. ``beats=True`` also prints one
    line per labelled beat.
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool | None = None
    interval: float = 1.0
    beats: bool = False
    max_rows: int = 40
    _last: float = -1e18
    _drawn: int = 0
    _recent: dict[str, deque[str]] = field(default_factory=dict)
    _alarms: dict[str, dict[str, AlarmEvent]] = field(default_factory=dict)
    _hr: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactive is None:
            self.interactive = bool(getattr(self.out, "isatty", lambda: False)())

    def on_beats(self, labeled: Iterable[LabeledBeat]) -> None:
        for lb in labeled:
            q = self._recent.get(lb.beat.stream)
            if q is None:
                q = self._recent[lb.beat.stream] = deque(maxlen=_RECENT)
            q.append(lb.symbol)
            if self.beats:
                b = lb.beat
                rr = f"{b.rr_prev * 1000:.0f} ms" if b.rr_prev is not None else "-"
                self.out.write(f"{b.stream} beat {lb.symbol} at {b.sample / b.fs:9.3f} s (sample {b.sample}) RR {rr}\n")

    def on_alarm(self, event: AlarmEvent) -> None:
        """Keep the stream's active clinical alarms; in plain mode print each onset and end."""
        if event.category != "clinical":
            return
        active = self._alarms.setdefault(event.stream, {})
        if event.state == "end":
            active.pop(event.kind, None)
        else:
            active[event.kind] = event
        if not self.interactive and event.state != "update":
            word = "ALARM" if event.state == "onset" else "alarm ended:"
            at = event.onset_sample if event.state == "onset" else event.sample  # in the stream's time
            self.out.write(f"{event.stream} {word} {event.priority.upper()} {event.text} at {at / event.fs:.1f} s\n")

    def on_vitals(self, vitals: Vitals) -> None:
        self._hr[vitals.stream] = vitals.hr

    def on_stream_end(self, proc: StreamProcessor) -> None:
        if not self.interactive:
            self.out.write(self._line(proc) + "\n")
            self.out.flush()

    def refresh(self, ingest: Ingest, now: float, force: bool = False) -> None:
        if not force and now - self._last < self.interval:
            return
        self._last = now
        procs = list(ingest.streams.values())
        if self.interactive:
            lines = [self._header(ingest)]
            lines.append(
                f"{'stream':<10} {'fs':>6} {'HR':>5} {'beats':>7} {'time':>9}  {'recent beats':<{_RECENT}}  status"
            )
            shown = procs[: self.max_rows]
            lines.extend(self._line(p) for p in shown)
            if len(procs) > len(shown):
                lines.append(f"... and {len(procs) - len(shown)} more streams")
            buf = ""
            if self._drawn:
                buf += f"\x1b[{self._drawn}F"
            buf += "".join(f"\x1b[2K{ln}\n" for ln in lines) + "\x1b[J"
            self.out.write(buf)
            self._drawn = len(lines)
        else:
            for p in procs:
                if not p.stats.ended:
                    self.out.write(self._line(p) + "\n")
        self.out.flush()

    def _header(self, ingest: Ingest) -> str:
        n = len(ingest.streams)
        ended = sum(p.stats.ended for p in ingest.streams.values())
        rejected = sum(ingest.rejected.values()) + sum(sum(p.stats.rejected.values()) for p in ingest.streams.values())
        return f"ecg-monitor: {n} streams ({ended} ended), {ingest.messages} messages, {rejected} rejected"

    def _line(self, p: StreamProcessor) -> str:
        hr = self._hr.get(p.stream)
        hr_s = f"{hr:5.0f}" if hr is not None else "    -"
        t = (p.samples_end - p.origin) / p.fs
        recent = "".join(self._recent.get(p.stream, ()))
        return f"{p.stream:<10} {p.fs:6.0f} {hr_s} {p.stats.beats:7d} {t:8.1f}s  {recent:<{_RECENT}}  {self._status(p)}"

    def _status(self, p: StreamProcessor) -> str:
        alarms = self._alarms.get(p.stream)
        if alarms and not p.stats.ended:
            order = sorted(alarms.values(), key=lambda e: priority_rank(e.priority))
            return "ALARM " + ", ".join(e.text for e in order) + "; " + stream_status(p)
        return stream_status(p)
