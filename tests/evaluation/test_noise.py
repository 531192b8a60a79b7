"""Noise stress records on the nst protocol: where the noise is, how loud, and written as a WFDB record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from monitor.evaluation import nst_mix, nst_name, reference_beats, write_nst_record
from monitor.testing import ecg, write_record

FS = 100.0


def _beats(n_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A spike of 2 mV peak to peak every second: the QRS amplitude the SNR is measured against."""
    x = np.zeros(int(n_s * FS))
    ref = np.arange(50, x.size - 10, int(FS))
    x[ref] = 2.0
    return x, ref


def test_noise_is_on_in_alternate_stretches_after_the_clean_start_at_the_requested_snr() -> None:
    x, ref = _beats(100)
    noise = np.random.default_rng(3).normal(0.0, 1.0, 3000)
    y = nst_mix(x, FS, ref, noise, 6.0, start_s=20.0, period_s=10.0)
    added = y - x
    t = np.arange(x.size) / FS
    on = (t >= 20) & (((t - 20) // 10) % 2 == 0)
    assert not added[~on].any()  # clean before 20 s and in every other 10 s
    assert np.all(np.abs(added[on]).reshape(-1, 1000).max(axis=1) > 0)
    starts = np.flatnonzero(np.diff(on.astype(int)) == 1) + 1
    assert np.all(added[starts] == 0)  # the level is continuous where noise starts
    signal_power = 2.0**2 / 8  # (QRS peak to peak)^2 / 8
    noise_power = added[on].reshape(-1, 1000).var(axis=1).mean()  # within each stretch (its offset removed)
    assert 10 * np.log10(signal_power / noise_power) == pytest.approx(6.0, abs=0.3)


def test_lower_snr_is_louder_noise_and_the_mix_is_deterministic() -> None:
    x, ref = _beats(60)
    noise = np.sin(np.arange(6000) / 7.0)
    quiet = nst_mix(x, FS, ref, noise, 12.0, start_s=10.0, period_s=10.0) - x
    loud = nst_mix(x, FS, ref, noise, 0.0, start_s=10.0, period_s=10.0) - x
    assert np.std(loud) / np.std(quiet) == pytest.approx(10 ** (12 / 20), rel=1e-6)
    assert np.array_equal(loud, nst_mix(x, FS, ref, noise, 0.0, start_s=10.0, period_s=10.0) - x)


def test_nst_names_follow_the_database() -> None:
    assert nst_name("118", "em", 0) == "118e00"
    assert nst_name("119", "em", 6) == "119e06"
    assert nst_name("118", "ma", -6) == "118m_6"


def test_a_mix_is_written_as_a_record_beside_a_copy_of_the_reference(tmp_path: Path) -> None:
    fs = 250.0
    x, peaks = ecg([1.0] * 400, fs, seed=2)  # more than 5 minutes
    clean = write_record(tmp_path / "clean", "rec", x, fs)
    wfdb.wrann("rec", "atr", np.asarray(peaks), ["N"] * len(peaks), fs=fs, write_dir=str(tmp_path / "clean"))
    noise = np.random.default_rng(0).normal(0, 0.3, int(60 * fs))
    write_record(tmp_path / "noise", "em", noise, fs)
    name = write_nst_record(clean, tmp_path / "noise" / "em", 0, tmp_path / "mix")
    assert name == "rece00"
    mix = wfdb.rdrecord(str(tmp_path / "mix" / name), physical=False)
    orig = wfdb.rdrecord(str(clean), physical=False)
    start = int(300 * fs)
    assert np.array_equal(mix.d_signal[:start], orig.d_signal[:start])  # the clean start is the original samples
    assert np.abs(mix.d_signal[start : start + int(fs)] - orig.d_signal[start : start + int(fs)]).max() > 0
    assert (tmp_path / "mix" / f"{name}.atr").read_bytes() == (tmp_path / "clean" / "rec.atr").read_bytes()
    ann = wfdb.rdann(str(tmp_path / "mix" / name), "atr")
    assert np.array_equal(reference_beats(ann.sample, ann.symbol), np.asarray(peaks))
    again = write_nst_record(clean, tmp_path / "noise" / "em", 0, tmp_path / "again")
    assert (tmp_path / "again" / f"{again}.dat").read_bytes() == (tmp_path / "mix" / f"{name}.dat").read_bytes()
