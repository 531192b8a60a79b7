"""Supraventricular alarms, evaluated at each beat.

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``afib``                medium    RR irregularity (median absolute successive difference over
                                  the median RR, V beats excluded, last ``af_window`` intervals)
                                  at least ``af_irregularity`` for ``af_on_beats`` beats
``svt``                 medium    a run of at least ``svt_beats`` S beats at a rate of at least
                                  ``svt_bpm``
======================  ========  ==========================================================

An interval counts for AF only when neither of its beats is V, so sinus rhythm
with PVCs and their compensatory pauses is not irregular. The AF onset is the
first beat of the irregular stretch that raised it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from monitor.alarms._beats import Beat, run_rate, trailing_run
from monitor.alarms._states import AlarmStates, Details
from monitor.vocabulary import ALARM_KINDS

__all__ = ["AfDetector", "check_svt"]


def check_svt(alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
    """A run of S beats fast enough for SVT ending at the latest beat (sample ``s``)."""
    cfg = alarms.config
    sv = trailing_run(beats, "S")
    rate = run_rate(sv, alarms.fs)
    if len(sv) >= cfg.svt_beats and rate is not None and rate >= cfg.svt_bpm:
        text = f"{ALARM_KINDS['svt'].text} {rate:.0f} bpm"
        alarms.sustain("svt", sv[0].sample, s, {"hr": round(rate, 1), "beats": len(sv)}, text)


class AfDetector:
    """Atrial fibrillation from the irregularity of the RR intervals; counts the irregular beats in a row."""

    def __init__(self) -> None:
        self._run = 0

    def check(self, alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
        """Judge the intervals up to the latest beat (sample ``s``)."""
        cfg = alarms.config
        fs = alarms.fs
        recent = list(beats)
        rr: list[float] = []
        for a, b in itertools.pairwise(recent):
            if a.label != "V" and b.label != "V":
                rr.append((b.sample - a.sample) / fs)
        rr = rr[-cfg.af_window :]
        if len(rr) < cfg.af_window:
            return
        diffs = sorted(abs(y - x) for x, y in itertools.pairwise(rr))
        med_rr = sorted(rr)[len(rr) // 2]
        irregularity = diffs[len(diffs) // 2] / med_rr if med_rr > 0 else 0.0
        if irregularity >= cfg.af_irregularity:
            self._run += 1
            if self._run >= cfg.af_on_beats or "afib" in alarms:
                hr = 60.0 / (sum(rr) / len(rr))
                back = min(self._run, len(recent))
                onset = alarms.onset("afib") if "afib" in alarms else recent[-back].sample
                details: Details = {"hr": round(hr, 1), "irregularity": round(irregularity, 3)}
                alarms.sustain("afib", onset, s, details, ALARM_KINDS["afib"].text)
        else:
            self._run = 0
