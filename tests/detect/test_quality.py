from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from monitor import AnnotationWriter, Ingest, encode_data, encode_eos
from monitor.detect import QualityConfig, QualityTracker
from tests.conftest import lead_mv

FS = 360.0
KW = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])


def run(x: np.ndarray, chunk: int = 36) -> tuple[Ingest, list[int]]:
    ingest = Ingest()
    beats: list[int] = []
    k = 0
    for k, i in enumerate(range(0, x.size, chunk)):
        parts = encode_data("s", k, i, FS, x[i : i + chunk, None].astype("<f4"), **KW)  # type: ignore[arg-type]
        beats += [b.sample for b in ingest.feed(parts)]
    beats += [b.sample for b in ingest.feed(encode_eos("s", k + 1, x.size))]
    return ingest, beats


@pytest.fixture
def ecg(mitdb: Path) -> np.ndarray:
    return lead_mv(mitdb, "100", seconds=90)[0]


def segment(a: float, b: float) -> slice:
    return slice(int(a * FS), int(b * FS))


def alarms(ingest: Ingest) -> list[tuple[str, float, float]]:
    return [(a.kind, a.onset / FS, (a.end or 0) / FS) for a in ingest.streams["s"].quality.alarms]


def assert_no_beats_in(beats: list[int], a: float, b: float) -> None:
    inside = [s for s in beats if a * FS + 0.5 * FS < s < b * FS - 0.1 * FS]
    assert not inside, inside


def test_clean_ecg_is_clean_and_raises_nothing(ecg: np.ndarray) -> None:
    ingest, beats = run(ecg)
    q = ingest.streams["s"].quality
    assert set(q.states) == {"clean"} and not q.alarms and len(beats) > 100


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("leads off", lambda x, s: np.full(x[s].size, 0.3)),  # flat line
        ("leads off", lambda x, s: np.clip(10 * x[s], -1.0, 1.0)),  # amplifier at its rails
        ("signal lost", lambda x, s: np.full(x[s].size, np.nan)),  # nothing arrives
    ],
)
def test_unusable_segments_raise_a_technical_alarm_and_give_no_beats(ecg: np.ndarray, kind: str, make: object) -> None:
    x = ecg.copy()
    s = segment(30, 45)
    x[s] = make(x, s)  # type: ignore[operator]
    ingest, beats = run(x)
    found = alarms(ingest)
    assert len(found) == 1, found
    k, onset, end = found[0]
    assert k == kind and 29 <= onset <= 31 and 44 <= end <= 46.5
    assert_no_beats_in(beats, 30, 45)
    assert any(s < 29 * FS for s in beats) and any(s > 47 * FS for s in beats)


def test_fibrillation_like_signal_gives_no_beats(ecg: np.ndarray) -> None:
    x = ecg.copy()
    s = segment(30, 50)
    t = np.arange(x[s].size) / FS
    x[s] = 0.8 * np.sin(2 * np.pi * 4.5 * t)  # flutter-like 270/min sinusoid
    ingest, beats = run(x)
    q = ingest.streams["s"].quality
    assert q.states.count("fibrillation-like") >= 14
    assert_no_beats_in(beats, 34, 50)  # the first seconds fill the analysis window


def test_heavy_noise_raises_noisy_signal(ecg: np.ndarray) -> None:
    x = ecg.copy()
    s = segment(30, 60)
    x[s] += np.random.default_rng(0).normal(0, 0.8, x[s].size)
    ingest, _ = run(x)
    found = alarms(ingest)
    assert [f[0] for f in found] == ["noisy signal"], found
    assert 29 <= found[0][1] <= 36 and 58 <= found[0][2] <= 63


def test_quality_does_not_depend_on_chunking(ecg: np.ndarray) -> None:
    x = ecg.copy()
    x[segment(20, 30)] = np.nan
    x[segment(50, 60)] += np.random.default_rng(1).normal(0, 0.8, segment(50, 60).stop - segment(50, 60).start)
    states = []
    for chunk in (7, 360, 5000):
        q = QualityTracker("s", FS)
        for i in range(0, x.size, chunk):
            q.process(x[i : i + chunk])
        states.append(q.states)
    assert states[0] == states[1] == states[2]


def test_technical_alarms_go_into_the_annotation_file(ecg: np.ndarray, tmp_path: Path) -> None:
    x = ecg.copy()
    x[segment(30, 45)] = np.nan
    ingest, _ = run(x)
    writer = AnnotationWriter(tmp_path)
    for alarm in ingest.take_technical():
        writer.add_technical(alarm, FS)
    writer.write("s")
    ann = wfdb.rdann(str(tmp_path / "s"), "mon")
    assert ann.symbol == ["~", "~"]
    assert [a.rstrip("\x00") for a in ann.aux_note] == ["(signal lost", "(clean"]


def test_bad_quality_settings_are_refused() -> None:
    from monitor import ConfigError

    with pytest.raises(ConfigError, match="flat_mv"):
        QualityConfig(flat_mv=-1)
    with pytest.raises(ConfigError, match="window_s"):
        QualityConfig(window_s=0.5, block_s=1.0)


def test_every_block_judged_is_handed_over_however_many_one_call_judges() -> None:
    """More blocks than the tracker keeps for beats, judged in one call: each verdict is still taken, once."""
    q = QualityTracker("s", FS, origin=1000)
    rng = np.random.default_rng(0)
    q.process(rng.normal(0.0, 0.3, int(400 * FS)))  # 400 one-second blocks in one go
    blocks = q.take_blocks()
    assert [end for end, _ in blocks] == [1000 + round(FS) * (i + 1) for i in range(400)]
    assert [state for _, state in blocks[-len(q.states) :]] == list(q.states)
    assert q.take_blocks() == []
    q.process(np.zeros(int(1.5 * FS)))
    assert [end for end, _ in q.take_blocks()] == [1000 + round(FS) * 401]


# ------------------------------------------------------------------ QRS-like activity (asystole)
def judge(x: np.ndarray, fs: float = 250.0) -> list[str]:
    q = QualityTracker("s", fs)
    q.process(x)
    return list(q.states)


def test_asystole_with_low_noise_or_p_waves_only_has_no_qrs() -> None:
    from monitor.testing import ecg as synthetic

    rng = np.random.default_rng(3)
    t = np.arange(round(12 * 250.0)) / 250.0
    low_noise = 0.03 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 0.3 * t)
    assert set(judge(low_noise)[4:]) == {"no QRS"}
    p_waves, _ = synthetic([1.0] * 10, 250.0, r_mv=0.0, t_mv=0.0, noise_mv=0.01)  # ventricular standstill
    assert set(judge(p_waves)[4:]) == {"no QRS"}


def test_small_qrs_complexes_and_artefact_steps_are_not_quiet() -> None:
    from monitor.testing import ecg as synthetic

    small, _ = synthetic([1.0] * 12, 250.0, r_mv=0.3, t_mv=0.1)  # beats a detector may miss
    assert "no QRS" not in judge(small)[4:]
    # an amplifier overloaded by electrode motion: a 4 mV step recovering over seconds, hiding the QRS
    t = np.arange(round(12 * 250.0)) / 250.0
    step = np.where(t >= 5.0, 4.0 * np.exp(-(t - 5.0) / 1.2), 0.0) + 0.1 * np.sin(2 * np.pi * 0.3 * t)
    states = judge(step)
    assert states[3:5] == ["no QRS", "no QRS"] and states[5:7] == ["clean", "clean"], states
    assert states[-1] == "no QRS"  # once it has settled, the absence of QRS is real
