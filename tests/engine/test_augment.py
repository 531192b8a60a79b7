"""Robust training beats: every variant goes through the monitor's detection path, keeps its ectopic beats,
thins its normal ones, and is cached; model selection never reads qtdb's excerpts of DS2 records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from engine import CLASSES, N_CONTEXT, RepresentationConfig
from engine.training import VARIANTS, Variant, robust_beatset
from engine.training import _augment as augment
from engine.training._augment import variant_signal
from engine.training._train import QTDB_DS2_EXCERPTS, selection_records
from monitor.testing import ecg

FS = 360.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-lead 70 s record with every fifth beat ventricular, its .atr, and a noise folder (em, ma, bw)."""
    root = tmp_path_factory.mktemp("aug")
    rr = [0.8] * 80
    wide = [k % 5 == 4 for k in range(81)]
    x, peaks = ecg(rr, FS, wide=wide, seed=3)
    sig = np.stack([x, -0.6 * x], axis=1)
    wfdb.wrsamp("rec", fs=FS, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=sig, fmt=["16", "16"],
                adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(root))  # fmt: skip
    symbols = ["V" if w else "N" for w in wide]
    wfdb.wrann("rec", "atr", np.asarray(peaks, dtype=np.int64), symbols, write_dir=str(root))
    noise = root / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for kind in ("em", "ma", "bw"):
        n = rng.standard_normal((int(FS * 100), 2)) * 0.2
        wfdb.wrsamp(kind, fs=FS, units=["mV", "mV"], sig_name=["a", "b"], p_signal=n, fmt=["212", "212"],
                    adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(noise))  # fmt: skip
    return root, noise


def test_variant_signal_inverts_scales_and_adds_noise_at_the_asked_snr(data: tuple[Path, Path]) -> None:
    x = np.sin(np.linspace(0, 60, 36000))
    ref = np.arange(100, 35900, 300, dtype=np.int64)
    rng = np.random.default_rng(1)
    np.testing.assert_allclose(variant_signal(x, FS, ref, Variant("i", invert=True), data[1], rng), -x)
    np.testing.assert_allclose(variant_signal(x, FS, ref, Variant("g", scale=0.5), data[1], rng), 0.5 * x)
    noisy = variant_signal(x, FS, ref, Variant("n", noise="em", snr_db=6.0), data[1], rng)
    half = round(0.05 * FS)
    amp = np.median([np.ptp(x[r - half : r + half]) for r in ref])
    snr = 10 * np.log10(amp**2 / 8 / np.var(noisy - x))
    assert snr == pytest.approx(6.0, abs=0.1)


def test_every_variant_keeps_its_ectopic_beats_thins_normal_ones_and_is_cached(
    data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, noise = data
    cfg = RepresentationConfig()
    cache = tmp_path / "cache"
    full = robust_beatset(root, ["rec"], cfg, noise_dir=noise, keep_n=0.2, cache=cache, progress=False)
    v, n = CLASSES.index("V"), CLASSES.index("N")
    assert full.context.shape == (len(full), N_CONTEXT) and full.windows.shape == (len(full), cfg.n_samples)
    n_v = int(np.sum(full.labels == v))
    assert n_v >= 14 * (1 + len(VARIANTS))  # the clean record and every variant keep (nearly) all 16 V beats
    clean_n = 64
    assert np.sum(full.labels == n) < clean_n * (1 + 0.45 * len(VARIANTS))  # variants keep about a fifth of N
    assert len(list(cache.glob("*.npz"))) == 1 + len(VARIANTS)
    wide = full.context[full.labels == v]
    assert np.median(wide[:, 6]) > 1.3 and np.median(full.context[full.labels == n][:, 6]) < 1.2  # width ratio

    def no_detection(*args: object, **kw: object) -> None:
        raise AssertionError("a cached variant was detected again")

    monkeypatch.setattr(augment, "variant_beats", no_detection)
    again = robust_beatset(root, ["rec"], cfg, noise_dir=noise, keep_n=0.2, cache=cache, progress=False)
    np.testing.assert_array_equal(again.labels, full.labels)
    np.testing.assert_array_equal(again.context, full.context)
    thin = robust_beatset(root, ["rec"], cfg, noise_dir=noise, keep_n=0.05, cache=cache, progress=False)
    assert np.sum(thin.labels == v) == n_v and np.sum(thin.labels == n) < np.sum(full.labels == n)


def test_without_noise_records_the_noisy_variants_are_skipped(data: tuple[Path, Path]) -> None:
    root, _ = data
    quiet = [v for v in VARIANTS if v.noise is None]
    got = robust_beatset(root, ["rec"], RepresentationConfig(), noise_dir=None, variants=quiet[:2], progress=False)
    assert np.sum(got.labels == CLASSES.index("V")) >= 14 * 3


def test_model_selection_never_reads_qtdb_excerpts_of_ds2_records(tmp_path: Path) -> None:
    (tmp_path / "RECORDS").write_text("sel100\nsel102\nsel114\nsel213\nsel803\nsele0104\n")
    assert selection_records(tmp_path) == ["sel102", "sel114", "sel803", "sele0104"]
    assert {"sel100", "sel103", "sel213", "sel232", "sel234"} <= QTDB_DS2_EXCERPTS and "sel114" not in QTDB_DS2_EXCERPTS
