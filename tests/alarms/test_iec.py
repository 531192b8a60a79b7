"""IEC 60601-2-27 style checks on synthetic ECG through the whole monitor (replay, detection, CNN, rhythm).

Heart-rate response to a step 80->120 and 80->40 bpm, heart rate on irregular
(bigeminal) rhythms, tall T-wave rejection, and time to a ventricular
tachycardia alarm at half, normal and double amplitude. Response time = from
the step to the first reading within 5% of the new rate that stays within 5%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import BeatClassifier, UnclassifiedClassifier, default_classifier
from monitor.alarms import AlarmEvent, Vitals
from monitor.app import Monitor, MonitorConfig, parse_source
from monitor.testing import VitalsRecorder, ecg, write_record
from replay._publisher import ReplayConfig

FS = 250.0
START = 0.8  # first R peak (s)


def run(
    tmp_path: Path, name: str, x: np.ndarray, classifier: BeatClassifier | None = None
) -> tuple[list[AlarmEvent], list[Vitals]]:
    path = write_record(tmp_path, name, x, FS)
    config = MonitorConfig(replay=ReplayConfig(speed=None))
    view = VitalsRecorder()
    monitor = Monitor(parse_source(f"replay:{path}"), config, classifier=classifier, lockstep=True, record_alarms=True)
    monitor.add_sink(view)
    assert monitor.run() == 0
    return monitor.alarm_events, view.vitals


def response_time(vitals: list[Vitals], step_s: float, target: float) -> float:
    ok = [v.hr is not None and abs(v.hr - target) <= 0.05 * target for v in vitals]
    times = [v.sample / FS for v in vitals]
    for i, t in enumerate(times):
        if t >= step_s and all(ok[i:]):
            return t - step_s
    return float("inf")


@pytest.mark.parametrize(("after_bpm", "limit_s"), [(120, 8.0), (40, 8.0)])
def test_heart_rate_step_response(tmp_path: Path, after_bpm: float, limit_s: float) -> None:
    before = [0.75] * 40  # 80 bpm for 30 s
    after = [60.0 / after_bpm] * round(25 * after_bpm / 60)
    x, peaks = ecg(before + after, FS, tail_s=0.5)
    step_s = peaks[len(before)] / FS  # the first beat at the new rate
    _, vitals = run(tmp_path, f"step{after_bpm}", x)
    assert response_time(vitals, step_s, after_bpm) <= limit_s


@pytest.mark.parametrize(
    ("rr_pair", "expected"),
    [((0.5, 1.0), 80.0), ((0.5, 1.5), 60.0), ((0.4, 0.6), 120.0)],
    ids=["bigeminy-80", "slow-alternating-60", "rapid-alternating-120"],
)
def test_heart_rate_on_alternating_rhythms(tmp_path: Path, rr_pair: tuple[float, float], expected: float) -> None:
    rr = [rr_pair[k % 2] for k in range(round(40 / sum(rr_pair)) * 2)]
    x, _ = ecg(rr, FS)
    _, vitals = run(tmp_path, "alt", x)
    steady = [v.hr for v in vitals if 12 <= v.sample / FS <= 38]
    assert steady and all(h is not None and abs(h - expected) <= 0.1 * expected for h in steady), steady


@pytest.mark.parametrize("t_mv", [0.6, 1.0])
def test_tall_t_waves_are_not_counted(tmp_path: Path, t_mv: float) -> None:
    x, _ = ecg([0.75] * 40, FS, r_mv=1.0, t_mv=t_mv)
    _, vitals = run(tmp_path, "tallt", x)
    steady = [v.hr for v in vitals if 8 <= v.sample / FS <= 28]
    assert steady and all(h is not None and abs(h - 80) <= 8 for h in steady), steady


@pytest.fixture(scope="module")
def cnn() -> BeatClassifier:
    return default_classifier(None, threads=1)


@pytest.mark.parametrize("amplitude", [0.5, 1.0, 2.0])
def test_time_to_ventricular_tachycardia_alarm(tmp_path: Path, cnn: BeatClassifier, amplitude: float) -> None:
    sinus = [0.75] * 26  # 20 s at 80 bpm
    vt = [60.0 / 180.0] * 60  # 20 s of wide complexes at 180 bpm
    x, peaks = ecg(sinus + vt + [0.75] * 10, FS, r_mv=amplitude, wide=[False] * 27 + [True] * 60 + [False] * 10)
    onset_s = peaks[27] / FS
    events, _ = run(tmp_path, f"vt{round(amplitude * 10)}", x, cnn)
    alarms = [e for e in events if e.state == "onset" and e.kind in ("vtach", "vfib", "tachy_extreme")]
    assert alarms, [(e.kind, e.state) for e in events]
    delay = alarms[0].sample / FS - onset_s
    assert delay <= 10.0, (alarms[0].kind, delay)
    assert not [e for e in events if e.state == "onset" and e.kind == "asystole"]


def test_no_alarm_on_steady_sinus_rhythm(tmp_path: Path, cnn: BeatClassifier) -> None:
    x, _ = ecg([0.8] * 60, FS)
    events, _ = run(tmp_path, "sinus", x, cnn)
    assert [e.kind for e in events if e.category == "clinical"] == []


def test_unclassified_beats_still_give_rate_alarms(tmp_path: Path) -> None:
    x, _ = ecg([0.75] * 10 + [0.4] * 50, FS)  # 80 then 150 bpm
    events, _ = run(tmp_path, "fast", x, UnclassifiedClassifier())
    assert "tachy_extreme" in [e.kind for e in events if e.state == "onset"]
