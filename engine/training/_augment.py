"""Robust training beats: each DS1 record under other leads, gains, polarities, noises and rates.

Every variant is a whole signal that goes through the monitor's own detection
path (:func:`monitor.beats_of_signal`), so its beats, windows, RR context and
shape against the stream's dominant beat are what the monitor computes at run
time on such a signal; the reference beats are carried over (and rescaled to a
new rate). Variants:

=============  ===============================================================
``lead1``      the record's second lead
``invert``     lead 0 upside down (polarity inversion)
``gain``       lead 0 at a third of its amplitude, with slow baseline wander
               (sum of 0.05-0.5 Hz sinusoids, 0.6 mV)
``em12``       lead 0 + real electrode-motion noise (nstdb ``em``) at 12 dB
``em6``        ... at 6 dB
``ma6``        lead 0 + real muscle artefact (nstdb ``ma``) at 6 dB
``bw0``        lead 0 + real baseline wander (nstdb ``bw``) at 0 dB
``lead1ma12``  lead 1 + ``ma`` at 12 dB
``fs128``      lead 0 resampled to 128 Hz
``fs250em12``  lead 0 at 250 Hz + ``em`` at 12 dB
``fs500inv``   lead 1 inverted, resampled to 500 Hz
=============  ===============================================================

SNR is defined as the noise stress test's ``nst`` tool does: signal power from
the median QRS peak-to-peak amplitude ``A`` of the reference beats (``A²/8``),
noise power the variance of the noise segment (a random 30-min-long stretch of
the noise record, wrapped). Every variant keeps all its S, V, F and Q beats and
a random fraction of its N beats (the clean lead-0 record keeps all), so the
set stays affordable on a few CPU cores. Variants are cached with
:data:`CACHED_KEEP_N` of their N beats (or ``keep_n`` when larger); a smaller
``keep_n`` thins the cached N beats further, with a seeded draw.

Beat sets are cached (``.npz``) under a cache folder, keyed by the record's
files, the variant, the representation and :data:`CACHE_VERSION`; the cache is
never in the repository. Only the records asked for are read: training asks
for DS1 records alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import wfdb
from numpy.typing import NDArray
from scipy import signal as sp_signal

from engine import CLASSES, RepresentationConfig
from engine.training._dataset import BeatSet, aami_labels, beats_of_record, concat, label_beats

__all__ = ["CACHE_VERSION", "VARIANTS", "Variant", "default_cache_dir", "robust_beatset", "variant_beats"]

#: Bump when detection, shape features or this module change what a cached beat set holds.
CACHE_VERSION = 1
#: Share of N beats a cached variant holds (at least): smaller shares are drawn from it.
CACHED_KEEP_N = 0.2


@dataclass(frozen=True)
class Variant:
    """One way of degrading a record (see the module docstring)."""

    name: str
    lead: int = 0
    invert: bool = False
    scale: float = 1.0
    wander_mv: float = 0.0
    noise: str | None = None  # nstdb-noise record: em, ma or bw
    snr_db: float = 12.0
    fs: float | None = None  # resample to this rate; None: the record's own


VARIANTS: tuple[Variant, ...] = (
    Variant("lead1", lead=1),
    Variant("invert", invert=True),
    Variant("gain", scale=1 / 3, wander_mv=0.6),
    Variant("em12", noise="em", snr_db=12),
    Variant("em6", noise="em", snr_db=6),
    Variant("ma6", noise="ma", snr_db=6),
    Variant("bw0", noise="bw", snr_db=0),
    Variant("lead1ma12", lead=1, noise="ma", snr_db=12),
    Variant("fs128", fs=128.0),
    Variant("fs250em12", fs=250.0, noise="em", snr_db=12),
    Variant("fs500inv", lead=1, invert=True, fs=500.0),
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ecg-monitor/beatsets`` (default ``~/.cache/ecg-monitor/beatsets``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecg-monitor" / "beatsets"


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")


def _noise(
    noise_dir: Path, kind: str, channel: int, n: int, fs: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    rec = wfdb.rdrecord(str(noise_dir / kind), channels=[channel % 2])
    x = np.asarray(rec.p_signal[:, 0], dtype=np.float64)
    if abs(rec.fs - fs) > 1e-6:
        x = sp_signal.resample_poly(x, round(fs), round(rec.fs))
    start = int(rng.integers(x.size))
    idx = (start + np.arange(n)) % x.size
    seg = x[idx]
    return seg - seg.mean()


def variant_signal(
    x: NDArray[np.float64], fs: float, ref: NDArray[np.int64], v: Variant, noise_dir: Path, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Lead ``x`` (mV, at ``fs``) degraded as ``v`` says (before any resampling)."""
    y = x * v.scale * (-1.0 if v.invert else 1.0)
    if v.wander_mv:
        t = np.arange(y.size) / fs
        for f in rng.uniform(0.05, 0.5, 3):
            y = y + (v.wander_mv / 3) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    if v.noise is not None:
        half = max(1, round(0.05 * fs))
        p2p = [np.ptp(y[max(0, r - half) : r + half]) for r in ref[(ref > half) & (ref < y.size - half)]]
        amp = float(np.median(p2p)) if p2p else float(np.ptp(y))
        noise = _noise(noise_dir, v.noise, v.lead, y.size, fs, rng)
        power = float(noise.var()) or 1.0
        y = y + noise * np.sqrt(amp**2 / 8 / (power * 10 ** (v.snr_db / 10)))
    return y


def variant_beats(
    path: Path, v: Variant, cfg: RepresentationConfig, noise_dir: Path, keep_n: float, seed: int = 0
) -> BeatSet:
    """The labelled beats the monitor finds in record ``path`` degraded as ``v`` says (N beats subsampled)."""
    from monitor import StreamConfig, beats_of_signal

    rec = wfdb.rdrecord(str(path), channels=[v.lead])
    x = np.asarray(rec.p_signal[:, 0], dtype=np.float64)
    x = np.nan_to_num(x)
    ann = wfdb.rdann(str(path), "atr")
    ref, cls = aami_labels(ann.sample, ann.symbol)
    rng = np.random.default_rng(_seed(path.name, v.name, seed))
    y = variant_signal(x, float(rec.fs), ref, v, noise_dir, rng)
    fs = float(rec.fs)
    if v.fs is not None and abs(v.fs - fs) > 1e-6:
        y = sp_signal.resample_poly(y, round(v.fs), round(fs))
        ref = np.round(ref * v.fs / fs).astype(np.int64)
        fs = v.fs
    config = StreamConfig(window_pre_s=cfg.pre_s, window_post_s=cfg.post_s)
    beats = beats_of_signal(y.astype(np.float32), fs, config, stream=f"{path.name}-{v.name}")
    data = label_beats(beats, fs, ref, cls, cfg, path.name)
    keep = (data.labels != CLASSES.index("N")) | (rng.random(len(data)) < keep_n)
    return data.subset(keep)


def _key(path: Path, what: str, cfg: RepresentationConfig, keep_n: float, seed: int) -> str:
    files = [path.with_suffix(s) for s in (".hea", ".dat", ".atr")]
    stamp = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files if f.exists()]
    text = json.dumps([CACHE_VERSION, str(path.resolve()), stamp, what, asdict(cfg), keep_n, seed], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _cached(cache: Path | None, key: str, make: object) -> BeatSet:
    file = cache / f"{key}.npz" if cache is not None else None
    if file is not None and file.is_file():
        try:
            with np.load(file) as z:
                return BeatSet(z["windows"], z["context"], z["labels"], z["records"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is made again
    data: BeatSet = make()  # type: ignore[operator]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, windows=data.windows, context=data.context, labels=data.labels, records=data.records)
        tmp.replace(file)
    return data


def robust_beatset(
    data_dir: Path,
    records: Sequence[str],
    cfg: RepresentationConfig,
    *,
    noise_dir: Path | None,
    variants: Sequence[Variant] = VARIANTS,
    keep_n: float = 0.2,
    cache: Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> BeatSet:
    """Each record's clean lead-0 beats (all), then its variants' beats (all ectopic ones, ``keep_n`` of N).

    Variants that need noise are skipped when ``noise_dir`` is None.
    """
    parts = []
    chosen = [v for v in variants if v.noise is None or noise_dir is not None]
    total = len(records) * (1 + len(chosen))
    done = 0
    nd = noise_dir if noise_dir is not None else Path(".")
    for rec in records:
        path = Path(data_dir) / rec
        parts.append(_cached(cache, _key(path, "clean", cfg, 1.0, 0), lambda p=path: beats_of_record(p, cfg)))
        done += 1
        for v in chosen:
            if progress:
                print(f"\rrobust beat sets: {rec}/{v.name} ({done + 1}/{total})", end="", file=sys.stderr, flush=True)
            held = max(keep_n, CACHED_KEEP_N)
            key = _key(path, repr(v), cfg, held, seed)
            part = _cached(cache, key, lambda p=path, v=v, h=held: variant_beats(p, v, cfg, nd, h, seed))
            if keep_n < held:
                draw = np.random.default_rng(_seed(rec, v.name, seed, "thin")).random(len(part))
                part = part.subset((part.labels != CLASSES.index("N")) | (draw < keep_n / held))
            parts.append(part)
            done += 1
    if progress:
        print(file=sys.stderr)
    return concat(parts)
