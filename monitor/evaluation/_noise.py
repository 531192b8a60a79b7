"""Noise stress records in the manner of the MIT-BIH Noise Stress Test Database (nstdb).

The database's ``nst`` tool adds a calibrated noise record (``bw`` baseline
wander, ``em`` electrode motion, ``ma`` muscle artefact) to a clean record:

* the first 5 minutes stay clean; then noise is on for 2 minutes and off for
  2 minutes, alternately, to the end of the record;
* the noise gain gives the requested SNR: S = (mean QRS peak-to-peak
  amplitude)^2 / 8 over the reference beats (±50 ms around each), N = mean
  power of the noise in 1 s windows (mean removed); the largest and smallest
  5% of the measurements are discarded in both;
* where a noisy stretch starts, the noise is offset to 0 so the signal level
  stays continuous.

:func:`write_nst_record` writes such a mix as a WFDB record (each lead with
the noise channel of the same number, its gain from that lead's own QRS
amplitude) beside a byte copy of the clean record's reference ``.atr``, so the
monitor replays it and ``ecg-eval`` scores it like any record. Everything is
deterministic: the noise is taken from its first sample on, repeated if it is
shorter than the record.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import wfdb
from numpy.typing import NDArray
from scipy.signal import resample_poly

from monitor.evaluation._scoring import reference_beats

__all__ = ["NST_START_S", "nst_mix", "nst_name", "write_nst_record"]

NST_START_S = 300.0  # clean learning period at the start of every noise stress record
NST_PERIOD_S = 120.0  # noise on, then off, for this long, alternately


def _trimmed_mean(v: NDArray[np.float64]) -> float:
    lo, hi = np.percentile(v, [5, 95])
    keep = v[(v >= lo) & (v <= hi)]
    return float(keep.mean()) if keep.size else float(v.mean())


def nst_mix(
    x: NDArray[np.float64],
    fs: float,
    ref: NDArray[np.int64],
    noise: NDArray[np.float64],
    snr_db: float,
    *,
    start_s: float = NST_START_S,
    period_s: float = NST_PERIOD_S,
) -> NDArray[np.float64]:
    """One lead ``x`` plus ``noise`` (same rate) at ``snr_db`` on the nst protocol (see the module docstring).

    ``ref`` are the reference beat samples the signal power is measured on."""
    half = round(0.05 * fs)
    ptp = np.array([np.ptp(x[max(0, r - half) : r + half]) for r in ref if r + half < x.size])
    if ptp.size == 0:
        raise ValueError("no reference beats to measure the QRS amplitude on")
    s = _trimmed_mean(ptp) ** 2 / 8.0
    sec = int(fs)
    n_win = noise.size // sec
    if n_win == 0:
        raise ValueError("the noise record is shorter than 1 s")
    wins = noise[: n_win * sec].reshape(n_win, sec)
    npow = _trimmed_mean(wins.var(axis=1))
    gain = np.sqrt(s / (npow * 10 ** (snr_db / 10.0)))
    reps = int(np.ceil(x.size / noise.size))
    nz = np.tile(noise, reps)[: x.size]
    mask = np.zeros(x.size, dtype=bool)
    t = np.arange(x.size) / fs
    mask[(t >= start_s) & (((t - start_s) // period_s) % 2 == 0)] = True
    out = x.copy()
    seg_starts = np.flatnonzero(np.diff(np.concatenate(([False], mask))) == 1)
    for s0 in seg_starts:
        s1 = s0 + np.argmin(mask[s0:]) if not mask[s0:].all() else x.size
        out[s0:s1] += gain * (nz[s0:s1] - nz[s0])
    return out


def nst_name(record: str, noise: str, snr_db: int) -> str:
    """nstdb's naming: record, the noise's initial, the SNR in two digits (``_6`` for -6 dB): ``118e00``."""
    snr = f"{snr_db:02d}" if snr_db >= 0 else f"_{-snr_db}"
    return f"{record}{noise[:1]}{snr}"


def _noise_signal(noise_record: Path, fs: float) -> NDArray[np.float64]:
    rec = wfdb.rdrecord(str(noise_record))
    sig = np.asarray(rec.p_signal, dtype=np.float64)
    if float(rec.fs) != fs:
        ratio = Fraction(fs / float(rec.fs)).limit_denominator(1000)
        sig = resample_poly(sig, ratio.numerator, ratio.denominator, axis=0)
    return sig


def write_nst_record(clean: Path, noise_record: Path, snr_db: int, out_dir: Path) -> str:
    """Write ``clean`` (a WFDB record path) plus ``noise_record`` at ``snr_db`` into ``out_dir``; returns its name.

    The mix keeps the clean record's format gains and baselines (its clean
    stretches are the original samples) in 16-bit format; its ``.atr`` is a
    copy of the clean record's."""
    rec = wfdb.rdrecord(str(clean))
    ann = wfdb.rdann(str(clean), "atr")
    fs = float(rec.fs)
    ref = reference_beats(ann.sample, ann.symbol)
    noise = _noise_signal(noise_record, fs)
    x = np.asarray(rec.p_signal, dtype=np.float64)
    mixed = np.column_stack(
        [nst_mix(x[:, i], fs, ref, noise[:, i % noise.shape[1]], snr_db) for i in range(x.shape[1])]
    )
    gain = np.asarray(rec.adc_gain, dtype=np.float64)
    baseline = np.asarray(rec.baseline, dtype=np.int64)
    digital = np.round(mixed * gain + baseline)
    top = float(np.nanmax(np.abs(digital), initial=0.0))
    if top > 32767:  # a very noisy mix: a smaller gain keeps it in 16 bits
        scale = 32000.0 / top
        gain = gain * scale
        digital = np.round(mixed * gain + baseline)
    name = nst_name(clean.name, noise_record.name, snr_db)
    out_dir.mkdir(parents=True, exist_ok=True)
    digital[np.isnan(mixed)] = -32768  # WFDB's invalid sample in format 16
    wfdb.wrsamp(
        name,
        fs=rec.fs,
        units=rec.units,
        sig_name=rec.sig_name,
        d_signal=digital.astype(np.int64),
        fmt=["16"] * x.shape[1],
        adc_gain=gain.tolist(),
        baseline=baseline.tolist(),
        comments=[f"{clean.name} + {noise_record.name} at {snr_db} dB SNR (nst protocol)"],
        write_dir=str(out_dir),
    )
    shutil.copyfile(Path(f"{clean}.atr"), out_dir / f"{name}.atr")
    return name
