"""Re-alarm hold: a condition that has ended cannot alarm again inside its hold time unless it worsens.

After an episode of a kind ends at sample ``E``, a new onset of the same kind
on the same stream at sample ``s`` with ``(s - E) / fs`` below the kind's hold
time is held back, unless the condition is worse than the episode that ended
(than its most extreme figures over the whole episode, :class:`Figures`). The
hold time of a kind is the wait that ends it: ``hold_s`` for the event alarms
(pause, runs, couplets, SVT runs), ``clear_s`` for the others. A held condition
is judged again each time it holds (at each beat or second), so it alarms as
soon as it worsens, or once the hold has passed if it still holds. A more
serious alarm is another kind and is never held back by a lesser one's hold.

======================  ==========================================================================
alarm                   worse than the episode that ended
======================  ==========================================================================
``asystole``, ``vfib``  always: a lethal rhythm is never held back
``vtach``, ``vrun``,    a rate faster by at least ``update_bpm``, or a longer run (more beats)
``svt``
``afib``                a rate faster by at least ``update_bpm``
``tachy``               a rate above ``tachy_extreme_bpm``
``tachy_extreme``       a rate faster by at least ``update_bpm``
``brady``               a rate below ``brady_extreme_bpm``
``brady_extreme``       a rate slower by at least ``update_bpm``
``pause``               a pause longer by at least :data:`PAUSE_MARGIN_S`
``pvc_frequent``        at least :data:`PVC_MARGIN` more PVCs a minute
``couplet``,            never: what is worse is another alarm (a run, VT)
``bigeminy``,
``trigeminy``
======================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from monitor.alarms._settings import RhythmConfig

__all__ = ["EVENT_KINDS", "PAUSE_MARGIN_S", "PVC_MARGIN", "WORSENS", "Figures", "held", "hold_time"]

#: Alarms held for ``hold_s`` after their last occurrence (the others clear after ``clear_s``).
EVENT_KINDS = frozenset({"pause", "vrun", "couplet", "svt"})
#: A pause this much longer (s) than the longest of the ended episode is worse.
PAUSE_MARGIN_S = 0.5
#: This many more PVCs a minute than the most of the ended episode is worse.
PVC_MARGIN = 5

Details = Mapping[str, float | int | None]
#: whether a new onset (its details) is worse than the episode that ended (its figures)
Rule = Callable[[RhythmConfig, "Figures", Details], bool]


@dataclass
class Figures:
    """The lowest and highest value of each figure of an episode's details, over the whole episode."""

    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)

    def add(self, details: Details) -> None:
        for key, value in details.items():
            if isinstance(value, (int, float)):
                self.low[key] = min(self.low.get(key, value), value)
                self.high[key] = max(self.high.get(key, value), value)


def _value(details: Details, key: str) -> float | None:
    value = details.get(key)
    return value if isinstance(value, (int, float)) else None


def _faster(key: str, margin: Callable[[RhythmConfig], float]) -> Rule:
    def rule(cfg: RhythmConfig, old: Figures, new: Details) -> bool:
        value, most = _value(new, key), old.high.get(key)
        return value is not None and (most is None or value >= most + margin(cfg))

    return rule


def _slower(key: str, margin: Callable[[RhythmConfig], float]) -> Rule:
    def rule(cfg: RhythmConfig, old: Figures, new: Details) -> bool:
        value, least = _value(new, key), old.low.get(key)
        return value is not None and (least is None or value <= least - margin(cfg))

    return rule


def _either(*rules: Rule) -> Rule:
    return lambda cfg, old, new: any(rule(cfg, old, new) for rule in rules)


def _always(cfg: RhythmConfig, old: Figures, new: Details) -> bool:
    return True


def _never(cfg: RhythmConfig, old: Figures, new: Details) -> bool:
    return False


def _above_extreme_tachy(cfg: RhythmConfig, old: Figures, new: Details) -> bool:
    hr = _value(new, "hr")
    return hr is not None and hr > cfg.tachy_extreme_bpm


def _below_extreme_brady(cfg: RhythmConfig, old: Figures, new: Details) -> bool:
    hr = _value(new, "hr")
    return hr is not None and 0 < hr < cfg.brady_extreme_bpm


_run_worse = _either(_faster("hr", lambda c: c.update_bpm), _faster("beats", lambda c: 1))

#: kind -> its rule; see the module docstring.
WORSENS: dict[str, Rule] = {
    "asystole": _always,
    "vfib": _always,
    "vtach": _run_worse,
    "vrun": _run_worse,
    "svt": _run_worse,
    "afib": _faster("hr", lambda c: c.update_bpm),
    "tachy": _above_extreme_tachy,
    "tachy_extreme": _faster("hr", lambda c: c.update_bpm),
    "brady": _below_extreme_brady,
    "brady_extreme": _slower("hr", lambda c: c.update_bpm),
    "pause": _faster("pause_s", lambda c: PAUSE_MARGIN_S),
    "pvc_frequent": _faster("pvc_per_min", lambda c: PVC_MARGIN),
    "couplet": _never,
    "bigeminy": _never,
    "trigeminy": _never,
}


def hold_time(kind: str, cfg: RhythmConfig) -> float:
    """The hold time (s) of ``kind``: the wait that ends it."""
    return cfg.hold_s if kind in EVENT_KINDS else cfg.clear_s


def held(kind: str, since_end: int, fs: float, cfg: RhythmConfig, ended: Figures, details: Details) -> bool:
    """A new onset of ``kind`` ``since_end`` samples after its previous episode ended is held back."""
    if since_end / fs >= hold_time(kind, cfg):
        return False
    return not WORSENS.get(kind, _never)(cfg, ended, details)
