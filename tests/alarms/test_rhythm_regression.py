"""The rhythm logic gives exactly the recorded alarms and vitals on seeded random input.

Each scenario drives a :class:`RhythmAnalyzer` with a seeded mix of sinus
rhythm at changing rates, irregular (AF-like) stretches, runs of V and S beats,
bigeminy and trigeminy, unclassified (Q) beats, pauses, asystole,
fibrillation-like, lost, leads-off and noisy signal blocks, delivered in chunks
of random length with labels out of order. Every event and vitals record must
match ``rhythm_regression.json`` field for field (an ``int`` detail stays an
``int``). After an intended change of the alarm behaviour, record the fixture
again with ``python -m tests.alarms.test_rhythm_regression`` and review its diff.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monitor.alarms import AlarmEvent, RhythmAnalyzer, RhythmConfig, Vitals
from monitor.vocabulary import END_REASON_PATTERNS, END_REASONS
from tests.alarms.test_rhythm import judged

FIXTURE = Path(__file__).with_name("rhythm_regression.json")


@dataclass(frozen=True)
class Scenario:
    seed: int
    fs: float
    duration_s: float
    origin: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    max_step_s: float = 1.0


SCENARIOS: dict[str, Scenario] = {
    "default-250": Scenario(seed=11, fs=250.0, duration_s=300.0),
    "tuned-360": Scenario(
        seed=23,
        fs=360.0,
        duration_s=240.0,
        origin=12_345,
        config={
            "af_window": 12,
            "af_on_beats": 8,
            "af_irregularity": 0.08,
            "hr_max_beats": 8,
            "hr_window_s": 3.0,
            "rate_on_s": 3.0,
            "update_s": 2.0,
            "update_bpm": 3.0,
            "clear_s": 3.0,
            "hold_s": 6.0,
            "vt_beats": 6,
            "pvc_per_min": 6.0,
            "bigeminy_cycles": 3,
            "trigeminy_cycles": 3,
            "disabled": ("couplet",),
        },
    ),
    "coarse-500": Scenario(seed=37, fs=500.0, duration_s=240.0, origin=7, max_step_s=3.0),
}

SEGMENTS = ("sinus", "af", "vrun", "svt", "bigeminy", "trigeminy", "pause", "asystole", "fib", "lost", "noisy")
WEIGHTS = (8, 3, 3, 2, 2, 2, 2, 1, 1, 1, 2)


def synthesize(rng: random.Random, duration_s: float) -> tuple[list[tuple[float, str]], dict[int, str]]:
    """Beats (time s, label) and the quality of the one-second blocks that are not clean."""
    beats: list[tuple[float, str]] = []
    quality: dict[int, str] = {}
    t = rng.uniform(0.2, 1.0)

    def beat(label: str, rr: float) -> None:
        nonlocal t
        beats.append((t, label))
        t += rr

    def blocks(state: str, seconds: float) -> None:
        for k in range(int(t), int(t + seconds) + 1):
            quality[k] = state

    while t < duration_s:
        kind = rng.choices(SEGMENTS, WEIGHTS)[0]
        if kind == "sinus":
            bpm = rng.uniform(32.0, 175.0)
            for _ in range(rng.randint(5, 40)):
                beat(rng.choices("NSVQ", (20, 1, 1, 1))[0], 60.0 / bpm * rng.uniform(0.97, 1.03))
        elif kind == "af":
            for _ in range(rng.randint(15, 60)):
                beat(rng.choices("NVQ", (12, 1, 1))[0], rng.uniform(0.35, 1.2))
        elif kind in ("vrun", "svt"):
            rr = rng.uniform(0.25, 0.7)
            for _ in range(rng.randint(2, 12)):
                beat("V" if kind == "vrun" else "S", rr * rng.uniform(0.95, 1.05))
        elif kind in ("bigeminy", "trigeminy"):
            unit = "NV" if kind == "bigeminy" else "NNV"
            for _ in range(rng.randint(2, 7)):
                for k, label in enumerate(unit):  # a premature V beat, then its compensatory pause
                    beat(label, 1.0 if label == "V" else 0.5 if k == len(unit) - 2 else 0.75)
        elif kind == "pause":
            t += rng.uniform(2.3, 3.9)
        elif kind == "asystole":
            t += rng.uniform(4.0, 12.0)
        elif kind == "fib":
            seconds = rng.uniform(2.0, 9.0)
            blocks("fibrillation-like", seconds)
            t += seconds
        elif kind == "lost":
            seconds = rng.uniform(1.0, 8.0)
            blocks(rng.choice(("signal lost", "leads off")), seconds)
            t += seconds
        else:
            seconds = rng.uniform(2.0, 10.0)
            blocks("noisy", seconds)
            stop = t + seconds
            while t < stop:
                beat("N", rng.uniform(0.6, 1.0))
    return [b for b in beats if b[0] < duration_s], quality


def drive(scenario: Scenario) -> tuple[list[AlarmEvent], list[Vitals]]:
    """Deliver the beats and blocks in random chunks, newest labels first now and then, as the monitor does."""
    rng = random.Random(scenario.seed)
    beats, quality = synthesize(rng, scenario.duration_s)
    fs, origin = scenario.fs, scenario.origin
    tick = max(1, round(fs))
    config = RhythmConfig(**scenario.config)
    an = RhythmAnalyzer("bed", fs, config, origin=origin)
    samples = [(origin + round(t * fs), label) for t, label in beats]
    end = origin + round(scenario.duration_s * fs)
    events: list[AlarmEvent] = []
    vitals: list[Vitals] = []
    i = block = 0
    horizon = origin
    while horizon < end:
        horizon = min(end, horizon + max(1, round(rng.uniform(0.02, scenario.max_step_s) * fs)))
        # what had arrived beyond the horizon once fed decision samples; the draws stay so the recorded
        # scenarios keep their inputs, and no decision depends on them any more
        rng.uniform(0.0, 0.3), rng.randint(0, 1)
        chunk = []
        while i < len(samples) and samples[i][0] < horizon:
            chunk.append(samples[i])
            i += 1
        if rng.random() < 0.3:
            chunk.reverse()
        for s, label in chunk:
            an.on_beat(s, label)
        while origin + (block + 1) * tick <= horizon:
            an.on_quality(origin + (block + 1) * tick, quality.get(block) or judged(beats, block + 1.0))
            block += 1
        rng.random()
        ev, vi = an.advance(horizon)
        events += ev
        vitals += vi
    events += an.finish(end, "stream ended")
    return events, vitals


def event_record(e: AlarmEvent) -> list[Any]:
    return [e.stream, e.kind, e.state, e.onset_sample, e.sample, e.fs, e.text, e.details, e.end_reason, e.category]


def vitals_record(v: Vitals) -> list[Any]:
    return [v.sample, v.hr, v.pvc_per_min, v.quality, *v.active]  # stream and fs: checked in record()


def record(scenario: Scenario) -> dict[str, list[list[Any]]]:
    events, vitals = drive(scenario)
    assert all(v.stream == "bed" and v.fs == scenario.fs and isinstance(v.fs, float) for v in vitals)
    return {"events": [event_record(e) for e in events], "vitals": [vitals_record(v) for v in vitals]}


def exact(records: list[list[Any]]) -> list[str]:
    """One JSON line per record: a float and an int of the same value differ, as do floats a bit apart."""
    return [json.dumps(r, sort_keys=True) for r in records]


def write_fixture() -> None:
    """One record per line, so that a change of behaviour reads as a short diff."""
    lines = ["{"]
    for i, (name, scenario) in enumerate(SCENARIOS.items()):
        rec = record(scenario)
        lines.append(f"{json.dumps(name)}: {{")
        for key in ("events", "vitals"):
            rows = exact(rec[key])
            lines.append(f"{json.dumps(key)}: [")
            lines += [row + ("," if j < len(rows) - 1 else "") for j, row in enumerate(rows)]
            lines.append("]," if key == "events" else "]")
        lines.append("}," if i < len(SCENARIOS) - 1 else "}")
    lines.append("}")
    FIXTURE.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_rhythm_alarms_match_the_recording(name: str) -> None:
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))[name]
    got = record(SCENARIOS[name])
    assert exact(got["events"]) == exact(expected["events"])
    assert exact(got["vitals"]) == exact(expected["vitals"])


def test_the_recording_covers_every_kind_of_transition() -> None:
    recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
    events = [e for s in recorded.values() for e in s["events"]]
    seen = {(e[1], e[2]) for e in events}
    kinds = {k for k, _ in seen}
    assert {"asystole", "vfib", "vtach", "vrun", "pause", "afib", "svt", "bigeminy", "trigeminy"} <= kinds
    assert {"brady", "tachy", "couplet", "pvc_frequent"} <= kinds
    assert {state for _, state in seen} == {"onset", "update", "end"}
    reasons = {e[8] for e in events}
    assert {"condition cleared", "beats resumed", "stream ended"} <= reasons
    assert any(r and r.startswith("superseded by") for r in reasons)


if __name__ == "__main__":
    write_fixture()


def test_every_end_reason_is_in_the_vocabulary() -> None:
    recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
    reasons = {e[8] for rec in recorded.values() for e in rec["events"] if e[8] is not None}
    assert reasons  # the recording ends episodes in several ways
    for reason in reasons:
        assert reason in END_REASONS or any(re.match(p, reason) for p in END_REASON_PATTERNS), reason
