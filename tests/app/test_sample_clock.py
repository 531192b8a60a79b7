"""Alarms on the sample clock: the same samples give the same ``.mon`` files and alarm transitions, whatever the
frame sizes, how many frames each turn of the monitor takes, how much wall time passes between turns (and so when
batches are due and labels come back), and whether labels are taken in lockstep."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import Beat, BeatClassifier, default_classifier
from monitor.alarms import AlarmEvent
from monitor.app import Monitor, MonitorConfig, Source
from monitor.testing import FakeClock, frames_of
from tests.conftest import lead_mv


@dataclass(frozen=True)
class Run:
    chunk: int  # samples a frame
    per_turn: int  # frames a turn of the monitor
    step_s: float  # wall time between turns
    lockstep: bool = False


RUNS = (
    Run(chunk=36, per_turn=10, step_s=0.1),  # real time
    Run(chunk=360, per_turn=1, step_s=0.05),  # 20x
    Run(chunk=3600, per_turn=3, step_s=0.003),  # as fast as it goes: labels lag far behind
    Run(chunk=360, per_turn=7, step_s=0.4, lockstep=True),
)


class RuleClassifier:
    """Labels from the RR context alone (premature and wide-apart: V; premature: S), so runs have ectopy."""

    name = "rule"

    def classify(self, beats: list[Beat]) -> list[str]:
        out = []
        for b in beats:
            prev, ref = b.rr_prev, b.rr_local or b.rr_mean
            if prev is None or ref is None:
                out.append("Q")
            elif prev < 0.8 * ref and (b.rr_next or 0.0) > 1.1 * ref:
                out.append("V")
            elif prev < 0.85 * ref:
                out.append("S")
            else:
                out.append("N")
        return out


def transition(e: AlarmEvent) -> tuple[object, ...]:
    return (e.stream, e.kind, e.state, e.onset_sample, e.sample, e.text, dict(e.details), e.end_reason, e.category)


def drive(
    mitdb: Path, records: tuple[str, ...], seconds: float, run: Run, out: Path, classifier: BeatClassifier
) -> tuple[dict[str, bytes], dict[str, list[tuple[object, ...]]]]:
    """The ``.mon`` files and the alarm transitions of ``records`` (their first ``seconds``) under ``run``."""
    streams = []
    for record in records:
        x, fs = lead_mv(mitdb, record, seconds)
        streams.append(frames_of(x, fs, stream=record, chunk=run.chunk))
    messages = [m for group in zip(*streams, strict=False) for m in group]  # interleaved, as devices send them
    messages += [m for s in streams for m in s[min(len(t) for t in streams) :]]
    clock = FakeClock()
    config = MonitorConfig(alarm_log=None, engine_thread=False, annotations=out, silence_s=60.0)
    monitor = Monitor(
        Source(endpoint=f"inproc://sample-clock-{out.name}"),
        config,
        classifier=classifier,
        clock=clock,
        lockstep=run.lockstep,
        record_alarms=True,
    )
    for i in range(0, len(messages), run.per_turn):
        monitor.process(messages[i : i + run.per_turn])
        clock.advance(run.step_s)
    for _ in range(200):  # the last batches come due and the streams finish
        if all(s.finished for s in monitor.streams.states.values()):
            break
        clock.advance(0.5)
        monitor.process()
    assert all(s.finished for s in monitor.streams.states.values())
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.mon"))}
    assert len(files) == len(records)
    alarms: dict[str, list[tuple[object, ...]]] = {}  # each stream's in order (streams interleave as they come)
    for e in monitor.alarm_events:
        if e.category == "clinical":
            alarms.setdefault(e.stream, []).append(transition(e))
    return files, alarms


def check_identical(
    mitdb: Path, tmp_path: Path, records: tuple[str, ...], seconds: float, runs: tuple[Run, ...]
) -> None:
    classifier = RuleClassifier()
    first_files, first_alarms = drive(mitdb, records, seconds, runs[0], tmp_path / "run0", classifier)
    assert first_alarms, "the stretch must raise alarms for the comparison to mean anything"
    for k, run in enumerate(runs[1:], 1):
        files, alarms = drive(mitdb, records, seconds, run, tmp_path / f"run{k}", classifier)
        assert alarms == first_alarms, run
        assert files == first_files, run


def test_same_alarms_and_annotations_whatever_the_chunks_and_pace(mitdb: Path, tmp_path: Path) -> None:
    check_identical(mitdb, tmp_path, ("208", "201"), 90.0, RUNS)


def test_four_records_five_minutes_whatever_the_chunks_and_pace(mitdb: Path, tmp_path: Path) -> None:
    check_identical(mitdb, tmp_path, ("208", "201", "203", "232"), 300.0, RUNS)


def test_trained_classifier_same_alarms_whatever_the_chunks_and_pace(mitdb: Path, tmp_path: Path) -> None:
    classifier = default_classifier()
    runs = (RUNS[0], RUNS[2], RUNS[3])
    first = drive(mitdb, ("208", "232"), 300.0, runs[0], tmp_path / "run0", classifier)
    for k, run in enumerate(runs[1:], 1):
        assert drive(mitdb, ("208", "232"), 300.0, run, tmp_path / f"run{k}", classifier) == first, run


def test_rule_classifier_is_a_function_of_the_beat() -> None:
    beat = Beat("s", 100, 360.0, 0.5, 1.2, 0.8, 0.8, np.zeros(10, np.float32), 95, 0.0)
    assert RuleClassifier().classify([beat, dataclasses.replace(beat, rr_prev=0.8)]) == ["V", "N"]


def test_every_quality_block_reaches_the_rhythm_logic_however_many_a_turn_judges(mitdb: Path, tmp_path: Path) -> None:
    """One turn taking more signal than the signal quality keeps (here the first 11 minutes of 232 in one turn):
    the rhythm logic still sees every block, so its alarms are those of a turn a frame (232: a bradycardia
    episode that clears at a block's end at 367 s and starts again)."""
    burst = Run(chunk=3600, per_turn=1000, step_s=0.003)
    check_identical(mitdb, tmp_path, ("232",), 660.0, (RUNS[0], burst))
