"""The lifecycle of the rhythm alarms of one stream: onset, update, end, and which alarm supersedes which.

Sustained conditions (asystole, VF, VT, rates, AF, bigeminy, trigeminy,
frequent PVCs) start when the condition holds and end once it has been absent
for ``clear_s``; event conditions (pause, runs, couplets, SVT runs) stay on
for ``hold_s`` after their last occurrence. Asystole ends at the next beat,
VF once ``vf_window_blocks`` blocks in a row are no longer fibrillation-like
and ``clear_s`` has passed. An alarm sends an update when its figures change
(heart rate by at least ``update_bpm``, any other figure by at least 1), at
most every ``update_s``; its text is the onset's for the whole episode (the
figures move in the details). An episode of a kind starts after the previous
one of that kind ended, so its onset sample, and with it its ``alarm_id``, is
its own, and onset <= updates <= end. A more serious alarm supersedes the related lesser
ones (:data:`SUPERSEDES`: VF over VT, runs and tachycardia; asystole over
pause and bradycardia; VT over runs, couplets and tachycardia; AF over SVT
runs; extreme rates over plain ones): they end with the reason
``superseded by ...`` and cannot start while it lasts. After an episode ends, a
new one of its kind cannot start inside the kind's hold time unless the
condition worsens (:mod:`monitor.alarms._realarm`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.alarms._events import AlarmEvent
from monitor.alarms._realarm import EVENT_KINDS, Figures, held, hold_time
from monitor.alarms._settings import RhythmConfig
from monitor.vocabulary import ALARM_KINDS

__all__ = ["EVENT_KINDS", "SUPERSEDES", "AlarmStates", "Details"]

#: alarm -> the lesser alarms it supersedes.
SUPERSEDES: dict[str, tuple[str, ...]] = {
    "vfib": ("vtach", "vrun", "couplet", "tachy", "tachy_extreme", "svt", "afib", "bigeminy", "trigeminy"),
    "asystole": ("pause", "brady", "brady_extreme"),
    "vtach": ("vrun", "couplet", "tachy", "tachy_extreme", "svt"),
    "brady_extreme": ("brady",),
    "tachy_extreme": ("tachy",),
    "vrun": ("couplet",),
    "afib": ("svt",),
}
Details = dict[str, float | int | None]


@dataclass
class _Active:
    kind: str
    onset: int
    last_seen: int  # last sample at which the condition held
    last_update: int
    details: Details
    text: str  # the onset's text, kept for the whole episode (its figures move in the details)
    figures: Figures  # the extremes of its figures over the episode, to judge a new onset against once it ended


class AlarmStates:
    """The active alarms of one stream and the events of their transitions, in the order they happened."""

    def __init__(self, stream: str, fs: float, config: RhythmConfig, ready: int) -> None:
        self.stream = stream
        self.fs = fs
        self.config = config
        #: the latest sample at which an input evaluated so far was complete (a beat's ready sample, a quality
        #: block's end, a second's tick): the decision sample of an onset decided now, from the samples alone
        self.ready = ready
        self._active: dict[str, _Active] = {}
        self._ended: dict[str, tuple[int, Figures]] = {}  # kind -> the end sample and figures of its latest episode
        self._events: list[AlarmEvent] = []

    def __contains__(self, kind: str) -> bool:
        return kind in self._active

    @property
    def kinds(self) -> tuple[str, ...]:
        """The active alarms, in the order they started."""
        return tuple(self._active)

    def onset(self, kind: str) -> int:
        """The onset sample of the active alarm ``kind``."""
        return self._active[kind].onset

    def take(self) -> list[AlarmEvent]:
        """The events since the last call."""
        events, self._events = self._events, []
        return events

    def sustain(self, kind: str, onset: int, s: int, details: Details, text: str) -> None:
        """The condition of ``kind`` holds at sample ``s``: start the alarm, or keep it on (and maybe update it).

        ``text`` is the onset's text (empty: the kind's display name).
        """
        if kind in self.config.disabled or self._superseded(kind) is not None:
            return
        act = self._active.get(kind)
        if act is None:
            ended = self._ended.get(kind)
            if ended is not None:
                previous, figures = ended
                if held(kind, s - previous, self.fs, self.config, figures, details):
                    return  # inside the hold time of the episode that ended, and no worse
                onset = max(onset, previous + 1)  # an episode starts after the previous one ended: its own id
            decision = max(s, self.ready, onset)  # the signal its inputs needed, whenever it arrived
            text = text or ALARM_KINDS[kind].text
            figures = Figures()
            figures.add(details)
            self._active[kind] = _Active(kind, onset, s, s, dict(details), text, figures)
            for lesser in SUPERSEDES.get(kind, ()):
                if lesser in self._active:
                    self.end(lesser, s, f"superseded by {kind}")
            self._emit(kind, "onset", onset, decision, text, details)
            return
        act.last_seen = s
        act.figures.add(details)
        changed = False
        for key, value in details.items():
            old = act.details.get(key)
            if isinstance(value, (int, float)) and isinstance(old, (int, float)):
                step = self.config.update_bpm if key == "hr" else 1
                if abs(value - old) >= step:
                    changed = True
        if changed and (s - act.last_update) / self.fs >= self.config.update_s:
            act.details = dict(details)
            act.last_update = s
            self._emit(kind, "update", act.onset, max(s, act.onset), act.text, details)

    def expire(self, t: int, vf_quiet: bool) -> None:
        """End the alarms whose condition has been absent long enough at sample ``t``.

        ``vf_quiet``: none of the last ``vf_window_blocks`` signal blocks is fibrillation-like.
        """
        cfg = self.config
        for kind, act in list(self._active.items()):
            if kind == "asystole":
                continue  # ends on the next beat
            if kind == "vfib":
                if vf_quiet and (t - act.last_seen) / self.fs >= cfg.clear_s:
                    self.end(kind, t, "condition cleared")
                continue
            if (t - act.last_seen) / self.fs >= hold_time(kind, cfg):
                self.end(kind, t, "condition cleared")

    def end(self, kind: str, s: int, reason: str) -> None:
        """End the active alarm ``kind`` at sample ``s``."""
        act = self._active.pop(kind)
        end = max(s, act.onset)
        self._ended[kind] = (end, act.figures)
        self._emit(kind, "end", act.onset, end, act.text, act.details, reason)

    def _superseded(self, kind: str) -> str | None:
        for higher, lesser in SUPERSEDES.items():
            if kind in lesser and higher in self._active:
                return higher
        return None

    def _emit(
        self,
        kind: str,
        state: str,
        onset: int,
        s: int,
        text: str,
        details: Mapping[str, float | int | None],
        reason: str | None = None,
    ) -> None:
        self._events.append(AlarmEvent(self.stream, kind, state, onset, s, self.fs, text, dict(details), reason))
