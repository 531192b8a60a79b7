"""The dominant-beat template and the beat shape measured against it."""

from __future__ import annotations

import numpy as np
import pytest

from engine import N_SHAPE, SHAPE_FEATURES, BeatShape, TemplateTracker

PRE_S, POST_S = 0.35, 0.45


def _beat(fs: float, qrs_ms: float = 80.0, amp: float = 1.0, p_wave: bool = True, seed: int = 0) -> np.ndarray:
    """A beat window: P wave, QRS (a Gaussian of the given width) and T wave, small noise."""
    t = (np.arange(round(PRE_S * fs) + round(POST_S * fs)) - round(PRE_S * fs)) / fs
    sigma = qrs_ms / 1000.0 / 5.0
    x = amp * np.exp(-0.5 * (t / sigma) ** 2)
    x -= 0.25 * amp * np.exp(-0.5 * ((t - 2.5 * sigma) / sigma) ** 2)
    x += 0.3 * np.exp(-0.5 * ((t - 0.25) / 0.04) ** 2)
    if p_wave:
        x += 0.15 * np.exp(-0.5 * ((t + 0.16) / 0.02) ** 2)
    rng = np.random.default_rng(seed)
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _tracker(fs: float) -> TemplateTracker:
    return TemplateTracker(fs, round(PRE_S * fs), round(PRE_S * fs) + round(POST_S * fs))


def test_learns_the_dominant_beat_then_measures_against_it() -> None:
    fs = 360.0
    tr = _tracker(fs)
    first = [tr.observe(_beat(fs, seed=i), i * 300) for i in range(12)]
    assert not any(s.learned for s in first[:-1])
    assert tr.learned
    normal = tr.observe(_beat(fs, seed=99), 12 * 300)
    assert normal.learned and normal.qrs_corr > 0.95 and not normal.unlike and not normal.wide
    assert normal.p_corr > 0.8
    pvc = tr.observe(_beat(fs, qrs_ms=180.0, amp=1.6, p_wave=False, seed=100), 13 * 300)
    assert pvc.wide and pvc.unlike
    assert pvc.width_ratio > 1.5 and pvc.amp_ratio > 1.3
    assert pvc.p_corr < normal.p_corr


def test_learning_prefers_the_narrow_beat_when_ectopic_beats_are_many() -> None:
    fs = 250.0
    tr = _tracker(fs)
    for i in range(12):  # bigeminy from the start: every other beat wide
        wide = i % 2 == 1
        tr.observe(_beat(fs, qrs_ms=180.0 if wide else 80.0, p_wave=not wide, seed=i), i * 200)
    assert tr.learned
    assert not tr.observe(_beat(fs, seed=50), 12 * 200).wide
    assert tr.observe(_beat(fs, qrs_ms=180.0, p_wave=False, seed=51), 13 * 200).wide


def test_relearns_after_a_lasting_change_of_morphology_but_not_in_a_fast_run() -> None:
    fs = 360.0
    tr = _tracker(fs)
    s = 0
    for i in range(20):
        tr.observe(_beat(fs, seed=i), s)
        s += 300
    # a fast run of wide beats (180 bpm) for 40 s: still unlike the template at its end
    for i in range(120):
        shape = tr.observe(_beat(fs, qrs_ms=170.0, p_wave=False, seed=1000 + i), s)
        s += 120
    assert shape.unlike
    # the lead is moved: inverted complexes at 72 bpm for 40 s become the new dominant beat
    shapes = []
    for i in range(50):
        shapes.append(tr.observe(-_beat(fs, seed=2000 + i), s))
        s += 300
    assert shapes[0].unlike
    assert shapes[-1].learned and not shapes[-1].unlike and shapes[-1].qrs_corr > 0.95


def test_features_do_not_depend_on_the_sampling_rate() -> None:
    out = {}
    for fs in (128.0, 250.0, 360.0, 500.0):
        tr = _tracker(fs)
        for i in range(12):
            tr.observe(_beat(fs, seed=i), i * int(fs))
        out[fs] = tr.observe(_beat(fs, qrs_ms=160.0, amp=1.5, p_wave=False, seed=7), 13 * int(fs))
    ratios = [s.width_ratio for s in out.values()]
    assert all(s.wide for s in out.values())
    assert max(ratios) - min(ratios) < 0.5
    assert all(abs(s.amp_ratio - out[360.0].amp_ratio) < 0.15 for s in out.values())


def test_reset_forgets_and_bad_windows_are_neutral() -> None:
    fs = 360.0
    tr = _tracker(fs)
    for i in range(12):
        tr.observe(_beat(fs, seed=i), i * 300)
    assert tr.learned
    tr.reset()
    assert not tr.learned
    bad = _beat(fs)
    bad[10] = np.nan
    assert tr.observe(bad, 0) == BeatShape(learned=False)
    assert tr.observe(np.zeros(5, np.float32), 0) == BeatShape(learned=False)


def test_shape_round_trips_through_an_array() -> None:
    shape = BeatShape(0.5, 1.8, 1.2, 0.4, -0.2, 0.14, True)
    arr = shape.as_array()
    assert arr.shape == (N_SHAPE,) == (len(SHAPE_FEATURES),)
    back = BeatShape.from_array(arr)
    assert back.learned and abs(back.width_ratio - 1.8) < 1e-6
    with pytest.raises(ValueError, match="7 values"):
        BeatShape.from_array(np.zeros(3))
