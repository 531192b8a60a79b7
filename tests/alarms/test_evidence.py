"""Ventricular alarms need shape evidence (wide and unlike the dominant beat), and AF is judged on the dominant
beats alone, with P waves as evidence against it."""

from __future__ import annotations

import numpy as np

from engine import BeatShape
from monitor.alarms import AlarmEvent, RhythmAnalyzer, RhythmConfig

FS = 250.0
#: a beat like the patient's dominant beat, with its P wave
LIKE = BeatShape(qrs_corr=0.98, width_ratio=1.0, amp_ratio=1.0, residual=0.1, p_corr=0.95, width_s=0.08, learned=True)
#: a wide beat unlike the dominant one, no P wave before it
WIDE = BeatShape(qrs_corr=0.4, width_ratio=1.8, amp_ratio=1.5, residual=0.9, p_corr=0.1, width_s=0.15, learned=True)
#: like the dominant beat's QRS, but no P wave before it (a fibrillating baseline)
NO_P = BeatShape(qrs_corr=0.97, width_ratio=1.0, amp_ratio=1.0, residual=0.1, p_corr=0.2, width_s=0.08, learned=True)

Beat = tuple[float, str, BeatShape | None]


def run(beats: list[Beat], until_s: float, config: RhythmConfig | None = None) -> list[AlarmEvent]:
    """Feed beats (time s, label, shape) and clean quality blocks, one second at a time."""
    an = RhythmAnalyzer("s", FS, config)
    events: list[AlarmEvent] = []
    todo = sorted(beats, key=lambda b: b[0])
    i = 0
    for sec in range(1, int(until_s) + 1):
        horizon = round(sec * FS)
        while i < len(todo) and round(todo[i][0] * FS) < horizon:
            an.on_beat(round(todo[i][0] * FS), todo[i][1], shape=todo[i][2])
            i += 1
        an.on_quality(horizon, "clean")
        events += an.advance(horizon)[0]
    return events + an.finish(round(until_s * FS))


def sinus(start: float, stop: float, bpm: float = 75, shape: BeatShape | None = LIKE) -> list[Beat]:
    return [(float(t), "N", shape) for t in np.arange(start, stop, 60.0 / bpm)]


def kinds(events: list[AlarmEvent]) -> set[str]:
    return {e.kind for e in events if e.state == "onset"}


def test_v_labels_on_beats_like_the_dominant_one_raise_no_ventricular_alarm() -> None:
    def with_run(shape: BeatShape | None) -> set[str]:
        beats = sinus(0.5, 10) + [(10.0 + 0.35 * k, "V", shape) for k in range(10)] + sinus(13.9, 40)
        beats += [(40.0, "V", shape), (40.4, "V", shape), *sinus(41.2, 60)]
        return kinds(run(beats, 60))

    assert {"vtach", "couplet"} <= with_run(WIDE)
    assert not {"vtach", "vrun", "couplet", "pvc_frequent"} & with_run(LIKE)
    assert {"vtach", "couplet"} <= with_run(None)  # bare labels: the label alone decides, as before


def test_an_irregular_run_is_a_run_not_vt() -> None:
    def alarms_of(rr: list[float]) -> set[str]:
        times = 10.0 + np.concatenate(([0.0], np.cumsum(rr)))
        beats = sinus(0.5, 10) + [(float(t), "V", WIDE) for t in times] + sinus(float(times[-1]) + 0.8, 40)
        return kinds(run(beats, 40))

    assert "vtach" in alarms_of([0.4] * 11)
    # T waves counted as beats: intervals of a quarter and half a second, as fast on average
    irregular = alarms_of([0.25, 0.25, 0.5, 0.25, 0.75, 0.5, 0.25, 0.5, 0.25, 0.75, 0.5])
    assert "vtach" not in irregular and "vrun" in irregular


def test_bigeminy_needs_v_beats_unlike_the_dominant_one() -> None:
    def bigeminy(shape: BeatShape) -> set[str]:
        beats: list[Beat] = []
        t = 0.5
        for k in range(40):
            beats.append((t, "N", LIKE) if k % 2 == 0 else (t, "V", shape))
            t += 0.6 if k % 2 == 0 else 1.0
        return kinds(run(beats, t + 1))

    assert "bigeminy" in bigeminy(WIDE)
    assert "bigeminy" not in bigeminy(LIKE)


def irregular(n: int, shape: BeatShape | None, seed: int = 3) -> list[Beat]:
    rr = np.random.default_rng(seed).uniform(0.45, 1.1, n)
    return [(float(t), "N", shape) for t in 0.5 + np.concatenate(([0], np.cumsum(rr)))]


def test_af_from_irregular_dominant_beats_without_p_waves() -> None:
    assert "afib" in kinds(run(irregular(150, NO_P), 120))
    assert "afib" in kinds(run(irregular(150, None), 120))  # no shapes: the intervals alone
    # as irregular, but the patient's P wave before every beat (sinus arrhythmia, wandering pacemaker): not AF
    assert "afib" not in kinds(run(irregular(150, LIKE), 120))


def test_frequent_supraventricular_ectopy_is_not_af() -> None:
    # sinus rhythm with a premature beat every third beat (atrial trigeminy): the premature beats are S, or unlike
    for ectopic in ((lambda t: (t, "S", NO_P)), (lambda t: (t, "N", WIDE))):
        beats: list[Beat] = []
        t = 0.5
        for k in range(150):
            beats.append(ectopic(t) if k % 3 == 2 else (t, "N", NO_P))
            t += 0.5 if k % 3 == 1 else (1.1 if k % 3 == 2 else 0.8)
        assert "afib" not in kinds(run(beats, t + 1))
