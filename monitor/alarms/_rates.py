"""Heart-rate alarms, evaluated each second on the reported heart rate (:mod:`monitor.alarms._heart_rate`).

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``brady_extreme``       high      heart rate below ``brady_extreme_bpm`` for ``rate_on_s``
``tachy_extreme``       high      heart rate above ``tachy_extreme_bpm`` for ``rate_on_s``
``brady``/``tachy``     medium    heart rate below ``brady_bpm`` / above ``tachy_bpm`` for
                                  ``rate_on_s``
======================  ========  ==========================================================

A rate of 0 (asystole) raises no bradycardia alarm. Hysteresis: a rate alarm
stays on until the rate is back past its limit by ``rate_hysteresis_bpm``, so
a rate hovering at the limit does not make it chatter.
"""

from __future__ import annotations

from monitor.alarms._states import AlarmStates
from monitor.vocabulary import ALARM_KINDS

__all__ = ["RateAlarms"]


class RateAlarms:
    """Bradycardia and tachycardia, plain and extreme; remembers since when each limit has been crossed."""

    def __init__(self) -> None:
        self._since: dict[str, int] = {}  # kind -> first sample the rate condition held

    def check(self, alarms: AlarmStates, t: int, hr: float | None) -> None:
        """The heart rate at sample ``t`` is ``hr``."""
        cfg = alarms.config
        h = cfg.rate_hysteresis_bpm
        tests = {
            "brady_extreme": (hr is not None and 0 < hr < cfg.brady_extreme_bpm, cfg.brady_extreme_bpm + h),
            "brady": (hr is not None and 0 < hr < cfg.brady_bpm, cfg.brady_bpm + h),
            "tachy_extreme": (hr is not None and hr > cfg.tachy_extreme_bpm, cfg.tachy_extreme_bpm - h),
            "tachy": (hr is not None and hr > cfg.tachy_bpm, cfg.tachy_bpm - h),
        }
        for kind, (present, release) in tests.items():
            if kind in alarms:
                # hysteresis: stays on until the rate is back past the limit by rate_hysteresis_bpm
                still = hr is not None and (hr < release if kind.startswith("brady") else hr > release)
                if still:
                    alarms.sustain(kind, alarms.onset(kind), t, {"hr": round(hr or 0.0, 1)}, "")
                continue
            if present:
                first = self._since.setdefault(kind, t)
                if (t - first) / alarms.fs >= cfg.rate_on_s:
                    text = f"{ALARM_KINDS[kind].text} {hr:.0f} bpm"
                    alarms.sustain(kind, first, t, {"hr": round(hr or 0.0, 1)}, text)
            else:
                self._since.pop(kind, None)
