"""Deterministic synthetic ECG for the standard-style tests: Gaussian P, QRS and T waves on chosen RR intervals.

Every wave is placed relative to its beat's R peak, so the beat times are known
exactly; amplitudes are in mV. ``wide=True`` gives a ventricular complex (wide,
no P wave, discordant T).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import wfdb


def _wave(t: np.ndarray, centre: float, width: float, amp: float) -> np.ndarray:
    return amp * np.exp(-0.5 * ((t - centre) / width) ** 2)


def ecg(
    rr: Sequence[float],
    fs: float = 250.0,
    *,
    r_mv: float = 1.0,
    t_mv: float = 0.3,
    wide: Sequence[bool] | None = None,
    noise_mv: float = 0.01,
    start_s: float = 0.8,
    tail_s: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A signal with R peaks ``start_s`` apart plus the given RR intervals; returns (signal mV, R-peak samples)."""
    peaks_s = start_s + np.concatenate(([0.0], np.cumsum(rr)))
    n = round((peaks_s[-1] + tail_s) * fs)
    t = np.arange(n) / fs
    x = np.zeros(n)
    kinds = list(wide) if wide is not None else [False] * len(peaks_s)
    for p, is_v in zip(peaks_s, kinds, strict=True):
        lo, hi = max(0, round((p - 0.4) * fs)), min(n, round((p + 0.6) * fs))
        seg = t[lo:hi]
        if is_v:
            w = _wave(seg, p, 0.04, 1.4 * r_mv) + _wave(seg, p + 0.07, 0.04, -0.6 * r_mv)
            w += _wave(seg, p + 0.3, 0.07, -0.5 * r_mv)
        else:
            w = _wave(seg, p - 0.16, 0.025, 0.12 * r_mv)
            w += _wave(seg, p - 0.025, 0.008, -0.1 * r_mv) + _wave(seg, p, 0.01, r_mv)
            w += _wave(seg, p + 0.025, 0.008, -0.2 * r_mv) + _wave(seg, p + 0.28, 0.045, t_mv)
        x[lo:hi] += w
    rng = np.random.default_rng(seed)
    x += noise_mv * rng.standard_normal(n) + 0.05 * np.sin(2 * np.pi * 0.2 * t)
    return x, np.round(peaks_s * fs).astype(np.int64)


def write_record(directory: Path, name: str, x: np.ndarray, fs: float) -> Path:
    """Write a one-lead WFDB record (16-bit, 200 adu/mV); returns its path without extension."""
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=x[:, None],
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        write_dir=str(directory),
    )
    return directory / name
