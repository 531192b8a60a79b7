"""Supraventricular alarms, evaluated at each beat.

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``afib``                medium    the dominant beats' RR intervals are irregular (median
                                  absolute successive difference over the median RR, last
                                  ``af_window`` intervals) at least ``af_irregularity``, and
                                  no P waves (median ``p_corr`` of those beats below
                                  ``af_p_corr``), for ``af_on_beats`` beats in a row
``svt``                 medium    a run of at least ``svt_beats`` S beats at a rate of at least
                                  ``svt_bpm``
======================  ========  ==========================================================

AF is judged on the patient's dominant rhythm only, so that frequent ectopy
cannot fool it: an interval counts only when neither of its beats is ectopic
(labelled S or V, or unlike the dominant beat, see
:func:`~monitor.alarms._beats.ectopic`), which takes out each ectopic beat with
its coupling interval and its compensatory pause. Sinus rhythm with PACs or
PVCs is then regular; with fewer than ``af_window`` such intervals among the
recent beats AF is not judged at all. Irregular beats each preceded by the
patient's own P wave (the atrial part of the beat correlating with the
dominant beat's, :class:`engine.BeatShape` ``p_corr``) are sinus arrhythmia,
not AF; the P-wave test needs a learned template for at least half the
window's beats (without shapes, the intervals alone decide). The AF onset is
the first beat of the irregular stretch that raised it.

Thresholds were chosen on mitdb (records 201 202 203 210 219 221 222 for AF
and all 48 for false alarms) and are reported on qtdb.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from monitor.alarms._beats import Beat, ectopic, run_rate, trailing_run
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
    """Atrial fibrillation from the irregularity of the dominant beats' RR intervals and the absence of P waves;
    counts the irregular beats in a row."""

    def __init__(self) -> None:
        self._run = 0

    def check(self, alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
        """Judge the intervals up to the latest beat (sample ``s``)."""
        cfg = alarms.config
        fs = alarms.fs
        recent = list(beats)
        rr: list[float] = []
        p_corr: list[float] = []
        for a, b in itertools.pairwise(recent):
            if not ectopic(a) and not ectopic(b):
                rr.append((b.sample - a.sample) / fs)
                if b.shape is not None and b.shape.learned:
                    p_corr.append(b.shape.p_corr)
        rr = rr[-cfg.af_window :]
        if len(rr) < cfg.af_window:
            self._run = 0
            return
        diffs = sorted(abs(y - x) for x, y in itertools.pairwise(rr))
        med_rr = sorted(rr)[len(rr) // 2]
        irregularity = diffs[len(diffs) // 2] / med_rr if med_rr > 0 else 0.0
        p_corr = sorted(p_corr[-cfg.af_window :])
        p_waves = len(p_corr) * 2 >= cfg.af_window and p_corr[len(p_corr) // 2] >= cfg.af_p_corr
        if irregularity >= cfg.af_irregularity and not p_waves:
            self._run += 1
            if self._run >= cfg.af_on_beats or "afib" in alarms:
                hr = 60.0 / (sum(rr) / len(rr))
                back = min(self._run, len(recent))
                onset = alarms.onset("afib") if "afib" in alarms else recent[-back].sample
                details: Details = {"hr": round(hr, 1), "irregularity": round(irregularity, 3)}
                alarms.sustain("afib", onset, s, details, ALARM_KINDS["afib"].text)
        else:
            self._run = 0
