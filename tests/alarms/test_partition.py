"""Rhythm logic is partition-invariant: how far each ``advance`` goes, and in which order the labels of the beats
not yet evaluated come back, change nothing it decides."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alarms import AlarmEvent, RhythmAnalyzer, RhythmConfig, Vitals

FS = 250.0
TICK = 250
QUALITIES = ("clean", "clean", "clean", "noisy", "fibrillation-like", "signal lost", "leads off")
CONFIG = RhythmConfig(clear_s=3.0, hold_s=4.0, rate_on_s=3.0, pvc_per_min=4.0, update_s=2.0)

Input = tuple[list[tuple[int, str, int]], list[tuple[int, str]], int]


@st.composite
def inputs(draw: st.DrawFn) -> Input:
    """Beats (sample, label, ready sample), one quality verdict a second, and the end sample."""
    n = draw(st.integers(5, 120))
    gaps = draw(st.lists(st.integers(60, 1100), min_size=n, max_size=n))  # 14 bpm to 250 bpm, with pauses
    labels = draw(st.lists(st.sampled_from("NNNNVVSQ"), min_size=n, max_size=n))
    waits = draw(st.lists(st.integers(0, 600), min_size=n, max_size=n))
    beats, s = [], draw(st.integers(0, 300))
    for gap, label, wait in zip(gaps, labels, waits, strict=True):
        s += gap
        beats.append((s, label, s + wait))
    end = s + draw(st.integers(1, 3000))
    blocks = [(k * TICK, draw(st.sampled_from(QUALITIES))) for k in range(1, end // TICK + 1)]
    return beats, blocks, end


def record(events: list[AlarmEvent], vitals: list[Vitals]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = [
        (e.kind, e.state, e.onset_sample, e.sample, e.text, dict(e.details), e.end_reason) for e in events
    ]
    return out + [(v.sample, v.hr, v.pvc_per_min, v.quality, v.active) for v in vitals]


def in_one_go(data: Input) -> list[tuple[object, ...]]:
    beats, blocks, end = data
    an = RhythmAnalyzer("s", FS, CONFIG)
    for s, label, ready in beats:
        an.on_beat(s, label, ready)
    for b, q in blocks:
        an.on_quality(b, q)
    events, vitals = an.advance(end)
    return record(events + an.finish(end), vitals)


def in_steps(data: Input, cuts: list[int], seed: int) -> list[tuple[object, ...]]:
    """Advance to each cut in turn, delivering before each only what the contract needs, in a shuffled order
    (newest labels first now and then), and sometimes some of what lies beyond the cut."""
    beats, blocks, end = data
    rng = random.Random(seed)
    an = RhythmAnalyzer("s", FS, CONFIG)
    todo_beats, todo_blocks = list(beats), list(blocks)
    events: list[AlarmEvent] = []
    vitals: list[Vitals] = []
    for h in [*sorted(cuts), end]:
        now = [b for b in todo_beats if b[0] < h or rng.random() < 0.2]  # labels may come back early
        todo_beats = [b for b in todo_beats if b not in now]
        rng.shuffle(now)
        for s, label, ready in now:
            an.on_beat(s, label, ready)
        ready_blocks = [b for b in todo_blocks if b[0] <= h or rng.random() < 0.3]
        todo_blocks = [b for b in todo_blocks if b not in ready_blocks]
        for b, q in ready_blocks:
            an.on_quality(b, q)
        ev, vi = an.advance(h)
        events += ev
        vitals += vi
    return record(events + an.finish(end), vitals)


@settings(max_examples=60, deadline=None)
@given(inputs(), st.lists(st.integers(0, 40_000), max_size=25), st.integers(0, 2**32 - 1))
def test_advance_is_partition_invariant(data: Input, cuts: list[int], seed: int) -> None:
    cuts = [c for c in cuts if c <= data[2]]
    assert in_steps(data, cuts, seed) == in_one_go(data)


@settings(max_examples=30, deadline=None)
@given(inputs(), st.integers(0, 2**32 - 1))
def test_one_sample_at_a_time_is_the_same(data: Input, seed: int) -> None:
    end = data[2]
    cuts = list(range(0, end, max(1, end // 300)))
    assert in_steps(data, cuts, seed) == in_one_go(data)
