"""Rhythm state machines driven by synthetic beats on the sample clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from monitor.alarms import AlarmEvent, RhythmAnalyzer, RhythmConfig, Vitals, load_rhythm_settings
from monitor.errors import ConfigError

FS = 250.0
ROOT = Path(__file__).resolve().parents[2]


def run(
    beats: list[tuple[float, str]],
    until_s: float,
    *,
    quality: dict[int, str] | None = None,
    config: RhythmConfig | None = None,
    step_s: float = 0.1,
) -> tuple[list[AlarmEvent], list[Vitals]]:
    """Feed beats (time s, label) and one quality verdict per second, advancing the horizon ``step_s`` at a time.

    A block not in ``quality`` is judged as the quality tracker would: ``no QRS`` without a beat in its last 1.5
    seconds, else clean."""
    an = RhythmAnalyzer("s", FS, config)
    events: list[AlarmEvent] = []
    vitals: list[Vitals] = []
    todo = sorted(beats)
    i = 0
    block = 0
    t = 0.0
    while t < until_s:
        t = round(t + step_s, 6)
        horizon = round(t * FS)
        while i < len(todo) and round(todo[i][0] * FS) < horizon:
            an.on_beat(round(todo[i][0] * FS), todo[i][1])
            i += 1
        while (block + 1) * FS <= horizon:
            an.on_quality(round((block + 1) * FS), (quality or {}).get(block) or judged(todo, block + 1.0))
            block += 1
        ev, vi = an.advance(horizon)
        events += ev
        vitals += vi
    events += an.finish(round(until_s * FS))
    return events, vitals


def judged(beats: list[tuple[float, str]], end_s: float) -> str:
    """The verdict of a block ending at ``end_s`` on a clean signal with these beats: QRS-like activity or none."""
    return "clean" if any(end_s - 1.5 < t <= end_s for t, _ in beats) else "no QRS"


def regular(start: float, stop: float, bpm: float, label: str = "N") -> list[tuple[float, str]]:
    return [(float(t), label) for t in np.arange(start, stop, 60.0 / bpm)]


def onsets(events: list[AlarmEvent], kind: str | None = None) -> list[AlarmEvent]:
    return [e for e in events if e.state == "onset" and (kind is None or e.kind == kind)]


def hr_at(vitals: list[Vitals], t: float) -> float | None:
    return next(v.hr for v in vitals if v.sample >= round(t * FS))


# ------------------------------------------------------------------ configuration
def test_shipped_toml_holds_the_defaults() -> None:
    settings = load_rhythm_settings(ROOT / "monitor" / "alarms" / "rhythm.toml")
    assert settings.default == RhythmConfig()


def test_toml_overrides_per_stream_and_rejects_unknown_keys(tmp_path: Path) -> None:
    f = tmp_path / "r.toml"
    f.write_text('tachy_bpm = 130\n[streams.bed-1]\nasystole_s = 5\ndisabled = ["couplet"]\n')
    s = load_rhythm_settings(f)
    assert s.default.tachy_bpm == 130.0
    assert s.for_stream("bed-1").asystole_s == 5.0 and s.for_stream("bed-1").tachy_bpm == 130.0
    assert s.for_stream("bed-1").disabled == ("couplet",)
    assert s.for_stream("other") == s.default
    f.write_text("tachy_bmp = 130\n")
    with pytest.raises(ConfigError, match="unknown setting 'tachy_bmp'"):
        load_rhythm_settings(f)
    f.write_text('[streams.x]\ndisabled = ["nonsense"]\n')
    with pytest.raises(ConfigError, match="unknown alarm kind"):
        load_rhythm_settings(f)
    f.write_text("asystole_s = -1\n")
    with pytest.raises(ConfigError, match="asystole_s"):
        load_rhythm_settings(f)
    f.write_text("pause_s = 5\n")
    with pytest.raises(ConfigError, match="pause_s"):
        load_rhythm_settings(f)
    with pytest.raises(ConfigError, match="no such file"):
        load_rhythm_settings(tmp_path / "missing.toml")
    f.write_text("this is = not toml [")
    with pytest.raises(ConfigError, match="cannot read"):
        load_rhythm_settings(f)


# ------------------------------------------------------------------ heart rate
def test_heart_rate_every_second_and_true_mean_on_alternating_rr() -> None:
    beats = regular(0.5, 60, 75)
    _, vitals = run(beats, 60)
    assert [v.sample for v in vitals[:3]] == [250, 500, 750]
    assert hr_at(vitals, 30) == pytest.approx(75, abs=0.5)
    # bigeminal rhythm: RR alternating 0.5 / 1.0 s is a mean rate of 80 bpm
    t, beats = 0.5, []
    for k in range(80):
        beats.append((t, "N"))
        t += 0.5 if k % 2 == 0 else 1.0
    _, vitals = run(beats, t)
    rates = [v.hr for v in vitals if 10 * FS <= v.sample <= (t - 2) * FS]
    assert all(r is not None and abs(r - 80) <= 6 for r in rates), rates


def test_heart_rate_reads_zero_in_asystole() -> None:
    _, vitals = run(regular(0.5, 20, 60), 30)
    assert hr_at(vitals, 15) == pytest.approx(60, abs=1)
    assert hr_at(vitals, 26) == 0.0


# ------------------------------------------------------------------ asystole, pause, VF
def test_asystole_raised_after_four_seconds_and_ended_by_a_beat() -> None:
    beats = regular(0.5, 20.1, 60) + regular(30, 40, 60)
    events, _ = run(beats, 40)
    on = onsets(events, "asystole")
    assert len(on) == 1
    assert on[0].onset_sample == round(19.5 * FS)  # the last beat
    assert 4.0 <= (on[0].sample - on[0].onset_sample) / FS <= 5.0
    assert on[0].priority == "high"
    end = [e for e in events if e.kind == "asystole" and e.state == "end"]
    assert end and end[0].sample == round(30 * FS) and end[0].end_reason == "beats resumed"
    # asystole supersedes the pause and brady alarms
    assert not [e for e in onsets(events) if e.kind in ("brady", "brady_extreme") and e.sample > on[0].sample]


def test_no_asystole_when_the_signal_is_lost() -> None:
    beats = regular(0.5, 20.1, 60) + regular(30, 40, 60)
    quality = {k: "signal lost" for k in range(20, 30)}
    events, _ = run(beats, 40, quality=quality)
    assert not onsets(events, "asystole")
    assert not onsets(events, "pause")


def test_pause_between_beats() -> None:
    beats = regular(0.5, 20.1, 60) + regular(23.2, 40, 60)
    events, _ = run(beats, 40)
    on = onsets(events, "pause")
    assert len(on) == 1 and on[0].priority == "medium"
    assert not onsets(events, "asystole")


def test_vf_from_the_signal_supersedes_asystole_and_clears() -> None:
    beats = regular(0.5, 20.1, 75) + regular(40, 60, 75)
    quality = {k: "fibrillation-like" for k in range(20, 38)}
    events, _ = run(beats, 60, quality=quality)
    on = onsets(events, "vfib")
    assert len(on) == 1 and on[0].priority == "high"
    assert on[0].onset_sample == round(20 * FS)
    assert (on[0].sample - on[0].onset_sample) / FS <= 4.0
    assert not onsets(events, "asystole")
    end = [e for e in events if e.kind == "vfib" and e.state == "end"]
    assert end and end[0].sample <= round(47 * FS)  # clean for 4 blocks and clear_s after the last VF block


# ------------------------------------------------------------------ ventricular ectopy
def test_vt_run_couplet_by_length_and_rate() -> None:
    beats = regular(0.5, 10, 75)
    beats += [(10.0 + 0.35 * k, "V") for k in range(8)]  # 8 V beats at 171 bpm: VT
    beats += regular(13.5, 40, 75)
    beats += [(40.0 + 0.4 * k, "V") for k in range(3)]  # run of 3
    beats += regular(41.5, 70, 75)
    beats += [(70.0, "V"), (70.4, "V")]  # couplet
    beats += regular(71.2, 100, 75)
    events, _ = run(beats, 100)
    vt = onsets(events, "vtach")
    assert len(vt) == 1 and vt[0].onset_sample == round(10.0 * FS) and vt[0].priority == "high"
    # decided at the eighth V beat, with the data that had arrived by the next step (0.1 s)
    assert 0 <= vt[0].sample - round((10.0 + 0.35 * 7) * FS) <= round(0.1 * FS)
    # the VT began as a run (third V beat) and the VT alarm superseded it
    assert [e.onset_sample for e in onsets(events, "vrun")] == [round(10.0 * FS), round(40.0 * FS)]
    ended = [e for e in events if e.kind == "vrun" and e.state == "end"]
    assert ended[0].end_reason == "superseded by vtach"
    assert round(70.0 * FS) in [e.onset_sample for e in onsets(events, "couplet")]


def test_slow_ventricular_rhythm_is_not_vt() -> None:
    beats = regular(0.5, 10, 75) + [(10 + 1.0 * k, "V") for k in range(10)] + regular(20.8, 40, 75)
    events, _ = run(beats, 40)
    assert not onsets(events, "vtach") and not onsets(events, "vrun")


def test_bigeminy_trigeminy_and_frequent_pvcs() -> None:
    t, beats = 0.5, []
    for k in range(40):
        beats.append((t, "V" if k % 2 else "N"))
        t += 0.8
    events, _ = run(beats, t + 1)
    assert len(onsets(events, "bigeminy")) == 1
    assert not onsets(events, "trigeminy")
    assert onsets(events, "pvc_frequent")
    t, beats = 0.5, []
    for k in range(45):
        beats.append((t, "V" if k % 3 == 2 else "N"))
        t += 0.8
    events, _ = run(beats, t + 1)
    assert len(onsets(events, "trigeminy")) == 1 and not onsets(events, "bigeminy")


# ------------------------------------------------------------------ supraventricular
def test_af_from_irregular_rr_not_from_sinus_with_ectopy() -> None:
    rng = np.random.default_rng(3)
    rr = rng.uniform(0.45, 1.1, 150)
    beats = [(float(t), "N") for t in 0.5 + np.concatenate(([0], np.cumsum(rr)))]
    events, _ = run(beats, beats[-1][0] + 1)
    on = onsets(events, "afib")
    assert len(on) == 1 and (on[0].sample - round(0.5 * FS)) / FS < 60
    # sinus rhythm with a PVC every 10 beats (and its compensatory pause): not AF
    beats, t = [], 0.5
    for k in range(150):
        premature = k % 10 == 9
        beats.append((t, "V" if premature else "N"))
        t += 0.5 if (k + 1) % 10 == 9 else (1.1 if premature else 0.8)
    events, _ = run(beats, t)
    assert not onsets(events, "afib")


def test_svt_run_of_s_beats() -> None:
    beats = regular(0.5, 10, 75) + [(10 + 0.4 * k, "S") for k in range(8)] + regular(13.5, 30, 75)
    events, _ = run(beats, 30)
    assert len(onsets(events, "svt")) == 1


# ------------------------------------------------------------------ rates and lifecycle
def test_tachycardia_with_hysteresis_does_not_chatter() -> None:
    beats = regular(0.5, 20, 80)
    t = 20.0
    for k in range(12):  # 10 s at 130 bpm, then 5 s at 117 (inside the hysteresis band), repeated
        bpm = 130 if k % 2 == 0 else 117
        beats += regular(t, t + (10 if k % 2 == 0 else 5), bpm)
        t += 10 if k % 2 == 0 else 5
    beats += regular(t, t + 30, 80)
    events, _ = run(beats, t + 30)
    assert len(onsets(events, "tachy")) == 1
    ends = [e for e in events if e.kind == "tachy" and e.state == "end"]
    assert len(ends) == 1 and ends[0].sample > round(t * FS)
    assert not onsets(events, "tachy_extreme")


def test_extreme_brady_supersedes_brady() -> None:
    beats = regular(0.5, 20, 70) + regular(20, 60, 35)
    events, _ = run(beats, 60)
    kinds = [e.kind for e in onsets(events)]
    assert "brady_extreme" in kinds
    assert all(
        e.kind != "brady" or e.state == "end" for e in events if e.sample > onsets(events, "brady_extreme")[0].sample
    )


def test_disabled_alarm_never_raised() -> None:
    beats = [*regular(0.5, 10, 75), (10.0, "V"), (10.4, "V"), *regular(11.2, 30, 75)]
    events, _ = run(beats, 30, config=dataclasses.replace(RhythmConfig(), disabled=("couplet",)))
    assert not onsets(events, "couplet")


def test_same_alarms_whatever_the_advance_steps() -> None:
    rng = np.random.default_rng(5)
    beats = regular(0.5, 30, 75) + [(30 + 0.33 * k, "V") for k in range(7)] + regular(33, 60, 75)
    beats += [(float(t), "N") for t in 60 + np.cumsum(rng.uniform(0.4, 1.2, 80))]
    a, va = run(beats, 150, step_s=0.1)
    b, vb = run(beats, 150, step_s=1.7)

    def key(events: list[AlarmEvent]) -> list[tuple[object, ...]]:
        # an onset's decision sample is when the data had arrived, which depends on the steps; nothing else may
        return [(e.kind, e.state, e.onset_sample, e.sample if e.state != "onset" else 0, e.end_reason) for e in events]

    assert key(a) == key(b) and a
    n = min(len(va), len(vb))
    assert [v.hr for v in va[:n]] == [v.hr for v in vb[:n]] and n >= 149


def test_labels_arriving_out_of_order_give_the_same_alarms() -> None:
    beats = regular(0.5, 10, 75) + [(10.0 + 0.4 * k, "V") for k in range(10)] + regular(14.3, 60, 75)
    in_order, _ = run(beats, 60)
    an = RhythmAnalyzer("s", FS)
    events: list[AlarmEvent] = []
    for t0 in np.arange(0, 60, 2.0):  # each 2 s: newer beats labelled before older ones, then the horizon moves
        chunk = [b for b in beats if t0 <= b[0] < t0 + 2.0]
        for t, label in reversed(chunk):
            an.on_beat(round(t * FS), label)
        for k in range(int(t0), int(t0) + 2):
            an.on_quality(round((k + 1) * FS), "clean")
        events += an.advance(round((t0 + 2.0) * FS))[0]
    events += an.finish(round(60 * FS))
    key = [(e.kind, e.state, e.onset_sample) for e in in_order]
    assert [(e.kind, e.state, e.onset_sample) for e in events] == key and key
