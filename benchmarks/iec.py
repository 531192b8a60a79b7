"""IEC 60601-2-27 style figures on synthetic ECG, through the whole monitor (replay, detection, CNN, rhythm).

The same scenarios as ``tests/alarms/test_iec.py``, measured and written out instead of
asserted: heart-rate response time to a step 80->120 and 80->40 bpm (from the
first beat at the new rate to the first reading within 5% of it that stays
there), heart rate on alternating (bigeminal) rhythms, tall T-wave rejection,
and time to the first high-priority ventricular alarm (VT, VF/VFL or extreme
tachycardia) for 180 bpm wide-complex tachycardia at 0.5, 1 and 2 mV. Alarm
times are in signal time, decided in lockstep (each 100 ms frame processed
completely before the next, as a real-time monitor would see the signal).

    python benchmarks/iec.py [--out benchmarks/results/iec.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from engine import BeatClassifier, UnclassifiedClassifier, default_classifier
from monitor.alarms import AlarmEvent, Vitals
from monitor.app import Monitor, MonitorConfig, parse_source
from monitor.testing import VitalsRecorder, ecg, write_record
from replay import ReplayConfig

FS = 250.0


def run(tmp: Path, name: str, x: np.ndarray, clf: BeatClassifier) -> tuple[list[AlarmEvent], list[Vitals]]:
    path = write_record(tmp, name, x, FS)
    view = VitalsRecorder()
    config = MonitorConfig(replay=ReplayConfig(speed=None))
    monitor = Monitor(parse_source(f"replay:{path}"), config, classifier=clf, lockstep=True, record_alarms=True)
    monitor.add_sink(view)
    monitor.run()
    return monitor.alarm_events, view.vitals


def response(vitals: list[Vitals], step_s: float, target: float) -> float | None:
    ok = [v.hr is not None and abs(v.hr - target) <= 0.05 * target for v in vitals]
    for i, v in enumerate(vitals):
        if v.sample / FS >= step_s and all(ok[i:]):
            return round(v.sample / FS - step_s, 2)
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/iec.json"))
    args = p.parse_args()
    q = UnclassifiedClassifier()
    cnn = default_classifier(None, threads=1)
    out: dict[str, object] = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                              "command": "python benchmarks/iec.py"}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        steps = {}
        for after in (120, 40):
            before = [0.75] * 40
            x, peaks = ecg(before + [60.0 / after] * round(25 * after / 60), FS, tail_s=0.5)
            _, vitals = run(tmp, f"step{after}", x, q)
            steps[f"80->{after}"] = response(vitals, peaks[len(before)] / FS, after)
        out["hr_step_response_s"] = steps
        alternating = {}
        for (a, b), expected in (((0.5, 1.0), 80.0), ((0.5, 1.5), 60.0), ((0.4, 0.6), 120.0)):
            rr = [(a, b)[k % 2] for k in range(round(40 / (a + b)) * 2)]
            x, _ = ecg(rr, FS)
            _, vitals = run(tmp, "alt", x, q)
            hr = [v.hr for v in vitals if 12 <= v.sample / FS <= 38 and v.hr is not None]
            alternating[f"{a}/{b} s ({expected:g} bpm)"] = {"min": round(min(hr), 1), "max": round(max(hr), 1)}
        out["hr_alternating_bpm"] = alternating
        tall = {}
        for t_mv in (0.6, 1.0, 1.2):
            x, _ = ecg([0.75] * 40, FS, r_mv=1.0, t_mv=t_mv)
            _, vitals = run(tmp, "tallt", x, q)
            hr = [v.hr for v in vitals if 8 <= v.sample / FS <= 28 and v.hr is not None]
            tall[f"T {t_mv} mV, R 1 mV, 80 bpm"] = {"min": round(min(hr), 1), "max": round(max(hr), 1)}
        out["tall_t_hr_bpm"] = tall
        vt = {}
        for amp in (0.5, 1.0, 2.0):
            wide = [False] * 27 + [True] * 60 + [False] * 10
            x, peaks = ecg([0.75] * 26 + [60 / 180] * 60 + [0.75] * 10, FS, r_mv=amp, wide=wide)
            events, _ = run(tmp, f"vt{round(amp * 10)}", x, cnn)
            first = [e for e in events if e.state == "onset" and e.kind in ("vtach", "vfib", "tachy_extreme")]
            vt[f"{amp} mV"] = {
                "first_alarm": first[0].kind if first else None,
                "delay_s": round(first[0].sample / FS - peaks[27] / FS, 2) if first else None,
                "alarms": sorted({e.kind for e in events if e.state == "onset"}),
            }
        out["vt_time_to_alarm"] = vt
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
