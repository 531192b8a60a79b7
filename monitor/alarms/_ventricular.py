"""Ventricular ectopy alarms, evaluated at each beat.

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``vtach``               high      a run of at least ``vt_beats`` ventricular beats at a rate
                                  of at least ``vt_bpm``, regular: median absolute successive
                                  RR difference over the median RR at most ``vt_irregularity``
``vrun``                medium    a run of at least ``run_beats`` ventricular beats
                                  (non-sustained VT) at a rate of at least ``run_bpm``, not
                                  (yet) VT
``bigeminy``            medium    ``bigeminy_cycles`` V-N cycles in a row
``trigeminy``           medium    ``trigeminy_cycles`` V-N-N cycles in a row
``couplet``             low       two ventricular beats in a row
``pvc_frequent``        low       at least ``pvc_per_min`` ventricular beats in the last minute
======================  ========  ==========================================================

A *ventricular* beat is one on the evidence (:func:`~monitor.alarms._beats.ventricular`):
labelled ``V`` and, once the stream's dominant beat is learned, both wide and
unlike it; a ``V`` label on a beat shaped like the patient's usual beat counts
as N. Without shapes (or before the template is learned) the label alone
decides. Shape evidence alone, on beats the classifier called N, does not make
a run: counting them raised more false VT than it found (vfdb 418-424).

A sustained VT is regular; the false ones on the VT/VF databases were
mostly runs of T waves counted as beats at half the interval (RR 0.25, 0.25,
0.5 s ...): a run too irregular for VT stays a run (``vrun``), and
disorganised ventricular activity is VF's (:mod:`monitor.alarms._signal`).

The rate of a run is its number of intervals over the time from its first to
its last beat. Bigeminy and trigeminy count every beat that is not ventricular
as N; once on, they stay on while the latest beats still end in one cycle.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

from monitor.alarms._beats import Beat, run_rate, ventricular
from monitor.alarms._states import AlarmStates
from monitor.vocabulary import ALARM_KINDS

__all__ = ["PvcCounter", "check_patterns", "check_ventricular_runs", "ventricular_run"]


def _regular(run: Sequence[Beat], limit: float) -> bool:
    """The intervals of a run are regular enough for a tachycardia: median |successive difference| over the
    median interval at most ``limit``."""
    rr = [b.sample - a.sample for a, b in itertools.pairwise(run)]
    diffs = sorted(abs(y - x) for x, y in itertools.pairwise(rr))
    return not diffs or diffs[len(diffs) // 2] <= limit * sorted(rr)[len(rr) // 2]


def ventricular_run(beats: Sequence[Beat]) -> list[Beat]:
    """The ventricular beats at the end of ``beats`` (oldest first); empty when the last beat is not one."""
    out: list[Beat] = []
    for b in reversed(beats):
        if not ventricular(b):
            break
        out.append(b)
    out.reverse()
    return out


def check_ventricular_runs(alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
    """VT, a run of PVCs or a couplet ending at the latest beat (sample ``s``)."""
    cfg = alarms.config
    v = ventricular_run(beats)
    rate = run_rate(v, alarms.fs)
    if len(v) >= cfg.vt_beats and rate is not None and rate >= cfg.vt_bpm and _regular(v, cfg.vt_irregularity):
        text = f"{ALARM_KINDS['vtach'].text} {rate:.0f} bpm"
        alarms.sustain("vtach", v[0].sample, s, {"hr": round(rate, 1), "beats": len(v)}, text)
    elif len(v) >= cfg.run_beats and rate is not None and rate >= cfg.run_bpm:
        alarms.sustain("vrun", v[0].sample, s, {"hr": round(rate, 1), "beats": len(v)}, f"Run of {len(v)} PVCs")
    elif len(v) == 2:
        alarms.sustain("couplet", v[0].sample, s, {"beats": 2}, ALARM_KINDS["couplet"].text)


def check_patterns(alarms: AlarmStates, beats: Sequence[Beat], s: int) -> None:
    """Bigeminy and trigeminy ending at the latest beat (sample ``s``)."""
    cfg = alarms.config
    labels = "".join("V" if ventricular(b) else "N" for b in beats)
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
        if ventricular(beat):
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
