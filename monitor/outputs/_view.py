"""Live console view: redraws in place on a terminal, plain lines otherwise.

On a terminal every line is cut to the terminal's width (never wrapped, so a
redraw leaves nothing behind), a stream with an active alarm is coloured by its
highest priority (IEC 60601-1-8: red high, yellow medium, cyan low), and below
72 columns the recent-beats column is left out (below 100 it is halved). ``---`` stands for a heart
rate that cannot be measured.
"""

from __future__ import annotations

import shutil
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from engine import LabeledBeat
from monitor.alarms import AlarmEvent, Vitals
from monitor.observe import StatusSnapshot, StreamStatus
from monitor.outputs._located import Locate, stream_index
from monitor.vocabulary import ALARM_KINDS, priority_rank

__all__ = ["LiveView", "stream_status"]

_RECENT = 24
_NARROW = 72  # below this many columns the recent-beats column is left out ...
_WIDE = 100  # ... below this many it shows half as many beats
#: ANSI colours of the alarm priorities (IEC 60601-1-8: red high, yellow medium, cyan low)
_COLOURS = {"high": "\x1b[1;31m", "medium": "\x1b[33m", "low": "\x1b[36m"}
_RESET = "\x1b[0m"


def fit(line: str, width: int) -> str:
    """``line`` cut to at most ``width - 1`` characters (the last column stays free, so a terminal never wraps)."""
    room = max(width - 1, 1)
    return line if len(line) <= room else line[: room - 1] + "…"


def stream_status(status: StreamStatus, now_sample_gap_s: float = 10.0) -> str:
    """One word (or a few) for a stream's state."""
    if status.error is not None:
        return "ERROR " + status.error
    if status.ended:
        return "ended"
    if status.quality_alarms:
        return "ALARM " + ", ".join(status.quality_alarms)
    if status.since_beat_s > now_sample_gap_s:
        return f"no beat for {status.since_beat_s:.0f} s"
    notes = []
    if status.quality != "clean":
        notes.append(status.quality)
    if status.samples_missing:
        notes.append(f"{status.samples_missing} samples missing")
    return ", ".join(["ok", *notes])


@dataclass
class LiveView:
    """Per-stream heart rate, beats, recent labels and status.

    ``interactive`` (default: the output is a terminal) redraws a table in place
    every ``interval`` seconds, each line cut to ``width`` columns (default: the
    terminal's width at each drawing) and coloured by alarm priority when
    ``colour`` (default: when interactive); otherwise a plain line per stream is
    printed every ``interval`` seconds and when a stream ends. ``beats=True``
    also prints one line per labelled beat.

    It reads nothing of the pipeline: the table comes from the monitor's
    published :class:`~monitor.observe.StatusSnapshot`, the labels, alarms and
    heart rates from the events it is handed (``on_beats``, ``on_alarm``,
    ``on_vitals``).
    """

    out: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool | None = None
    interval: float = 1.0
    beats: bool = False
    max_rows: int = 40
    width: int | None = None
    colour: bool | None = None
    _last: float = -1e18
    _drawn: int = 0
    _recent: dict[str, deque[str]] = field(default_factory=dict)
    _alarms: dict[str, dict[str, AlarmEvent]] = field(default_factory=dict)
    _hr: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactive is None:
            self.interactive = bool(getattr(self.out, "isatty", lambda: False)())
        if self.colour is None:
            self.colour = self.interactive

    def on_beats(self, labeled: Iterable[LabeledBeat], locate: Locate = stream_index) -> None:
        """Keep each stream's recent labels; with ``beats`` print a line per beat (the device's own index)."""
        for lb in labeled:
            q = self._recent.get(lb.beat.stream)
            if q is None:
                q = self._recent[lb.beat.stream] = deque(maxlen=_RECENT)
            q.append(lb.symbol)
            if self.beats:
                b = lb.beat
                rr = f"{b.rr_prev * 1000:.0f} ms" if b.rr_prev is not None else "-"
                at = locate(b.stream, b.sample)
                self.out.write(
                    f"{b.stream} beat {lb.symbol} at {at.sample / b.fs:9.3f} s (sample {at.sample}{at.note}) RR {rr}\n"
                )

    def on_alarm(self, event: AlarmEvent, locate: Locate = stream_index) -> None:
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
            at = locate(event.stream, event.onset_sample if event.state == "onset" else event.sample)
            when = f"{at.sample / event.fs:.1f} s{at.note}"  # on the device's clock
            self.out.write(f"{event.stream} {word} {event.priority.upper()} {event.text} at {when}\n")

    def on_vitals(self, vitals: Vitals) -> None:
        self._hr[vitals.stream] = vitals.hr

    def on_stream_end(self, status: StreamStatus) -> None:
        """A stream has ended: in plain mode print its last line."""
        if not self.interactive:
            self.out.write(self._line(status) + "\n")
            self.out.flush()

    def due(self, now: float, force: bool = False) -> bool:
        """Whether :meth:`refresh` at ``now`` would draw (so the caller takes a snapshot only then)."""
        return force or now - self._last >= self.interval

    def refresh(self, snapshot: StatusSnapshot, now: float, force: bool = False) -> None:
        """Draw ``snapshot`` if ``interval`` seconds have passed since the last drawing (or ``force``)."""
        if not self.due(now, force):
            return
        self._last = now
        streams = snapshot.streams
        if self.interactive:
            width = self.width or shutil.get_terminal_size((80, 24)).columns
            n_recent = 0 if width < _NARROW else _RECENT if width >= _WIDE else _RECENT // 2
            recent = f"{'recent beats':<{n_recent}}  " if n_recent else ""
            lines = [fit(self._header(snapshot), width)]
            lines.append(fit(f"{'stream':<10} {'fs':>6} {'HR':>5} {'beats':>7} {'time':>9}  {recent}status", width))
            shown = streams[: self.max_rows]
            lines.extend(self._paint(fit(self._line(s, n_recent), width), s) for s in shown)
            if len(streams) > len(shown):
                lines.append(fit(f"... and {len(streams) - len(shown)} more streams", width))
            buf = ""
            if self._drawn:
                buf += f"\x1b[{self._drawn}F"
            buf += "".join(f"\x1b[2K{ln}\n" for ln in lines) + "\x1b[J"
            self.out.write(buf)
            self._drawn = len(lines)
        else:
            for s in streams:
                if not s.ended:
                    self.out.write(self._line(s) + "\n")
        self.out.flush()

    def _header(self, snapshot: StatusSnapshot) -> str:
        n = len(snapshot.streams)
        ended = sum(s.ended for s in snapshot.streams)
        rejected = sum(snapshot.rejected_by_reason().values())
        return f"ecg-monitor: {n} streams ({ended} ended), {snapshot.messages} messages, {rejected} rejected"

    def _line(self, s: StreamStatus, recent: int = _RECENT) -> str:
        hr = self._hr.get(s.stream)
        hr_s = f"{hr:5.0f}" if hr is not None else "  ---"
        t = s.duration_s
        labels = f"{''.join(self._recent.get(s.stream, ()))[-recent:]:<{recent}}  " if recent else ""
        return f"{s.stream:<10} {s.fs:6.0f} {hr_s} {s.beats:7d} {t:8.1f}s  {labels}{self._status(s)}"

    def _paint(self, line: str, s: StreamStatus) -> str:
        """``line`` in the colour of the stream's highest-priority active alarm (when colouring)."""
        if not self.colour or s.ended:
            return line
        priorities = [e.priority for e in self._alarms.get(s.stream, {}).values()]
        priorities += [ALARM_KINDS[k].priority for k in s.quality_alarms if k in ALARM_KINDS]
        if not priorities:
            return line
        top = min(priorities, key=priority_rank)
        return f"{_COLOURS.get(top, '')}{line}{_RESET}"

    def _status(self, s: StreamStatus) -> str:
        alarms = self._alarms.get(s.stream)
        if alarms and not s.ended:
            order = sorted(alarms.values(), key=lambda e: priority_rank(e.priority))
            return "ALARM " + ", ".join(e.text for e in order) + "; " + stream_status(s)
        return stream_status(s)
