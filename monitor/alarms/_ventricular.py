"""Ventricular ectopy alarms, evaluated at each beat.

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``vtach``               high      a run of at least ``vt_beats`` V beats at a rate of at least
                                  ``vt_bpm``
``vrun``                medium    a run of at least ``run_beats`` V beats (non-sustained
                                  VT) at a rate of at least ``run_bpm``, not (yet) VT
``bigeminy``            medium    ``bigeminy_cycles`` V-N cycles in a row
``trigeminy``           medium    ``trigeminy_cycles`` V-N-N cycles in a row
``couplet``             low       two V beats in a row
``pvc_frequent``        low       at least ``pvc_per_min`` V beats in the last minute
======================  ========  ==========================================================

The rate of a run is its number of intervals over the time from its first to
its last beat. Bigeminy and trigeminy count every beat that is not V as N; once
on, they stay on while the latest beats still end in one cycle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from monitor.alarms._beats import Beat, run_rate, trailing_run
from monitor.alarms._states import AlarmStates
from monitor.vocabulary import ALARM_KINDS

__all__ = ["PvcCounter", "check_patterns", "check_ventricular_runs"]


def check_ventricular_runs(alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
    """VT, a run of PVCs or a couplet ending at the latest beat (sample ``s``)."""
    cfg = alarms.config
    v = trailing_run(beats, "V")
    rate = run_rate(v, alarms.fs)
    if len(v) >= cfg.vt_beats and rate is not None and rate >= cfg.vt_bpm:
        text = f"{ALARM_KINDS['vtach'].text} {rate:.0f} bpm"
        alarms.sustain("vtach", v[0].sample, s, {"hr": round(rate, 1), "beats": len(v)}, text)
    elif len(v) >= cfg.run_beats and rate is not None and rate >= cfg.run_bpm:
        alarms.sustain("vrun", v[0].sample, s, {"hr": round(rate, 1), "beats": len(v)}, f"Run of {len(v)} PVCs")
    elif len(v) == 2:
        alarms.sustain("couplet", v[0].sample, s, {"beats": 2}, ALARM_KINDS["couplet"].text)


def check_patterns(alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
    """Bigeminy and trigeminy ending at the latest beat (sample ``s``)."""
    cfg = alarms.config
    labels = "".join("V" if b.label == "V" else "N" for b in beats)
    for kind, unit, cycles in (
        ("bigeminy", "NV", cfg.bigeminy_cycles),
        ("trigeminy", "NNV", cfg.trigeminy_cycles),
    ):
        n = len(unit) * cycles
        if len(labels) >= n and labels[-n:] == unit * cycles:
            start = beats[-n].sample
            alarms.sustain(kind, start, s, {}, ALARM_KINDS[kind].text)
        elif len(labels) >= len(unit) and labels[-len(unit) :] == unit and kind in alarms:
            alarms.sustain(kind, alarms.onset(kind), s, {}, ALARM_KINDS[kind].text)


class PvcCounter:
    """The V beats of the last minute, and the frequent-PVC alarm."""

    def __init__(self, fs: float) -> None:
        self.fs = fs
        self._samples: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._samples)

    def on_beat(self, beat: Beat) -> None:
        if beat.label == "V":
            self._samples.append(beat.sample)
        self.forget_before(beat.sample)

    def forget_before(self, s: int) -> None:
        """Drop the V beats a minute or more before sample ``s``."""
        while self._samples and self._samples[0] <= s - 60 * self.fs:
            self._samples.popleft()

    def check(self, alarms: AlarmStates, s: int) -> None:
        n = len(self._samples)
        if n >= alarms.config.pvc_per_min:
            alarms.sustain("pvc_frequent", self._samples[0], s, {"pvc_per_min": n}, f"PVCs {n}/min")
