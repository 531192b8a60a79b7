"""Labelled beats from WFDB records, found by the monitor's own detection path.

Training sees beats exactly as the monitor hands them to the engine at run
time: the same detector, windows and RR context (``Ingest`` over the record),
each matched to the nearest reference beat within 150 ms for its label.
Detections with no reference beat have no label and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb
from numpy.typing import NDArray

from engine import AAMI_OF_SYMBOL, CLASSES, RepresentationConfig, resample_windows, rr_features

__all__ = ["DS1", "DS2", "BeatSet", "aami_labels", "beats_of_record", "load_beatset"]

#: de Chazal's inter-patient split (paced records 102, 104, 107, 217 in neither).
DS1 = ("101 106 108 109 112 114 115 116 118 119 122 124 201 203 205 207 208 209 215 220 223 230").split()
DS2 = ("100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234").split()


@dataclass
class BeatSet:
    """Arrays of labelled beats: windows at the representation rate, RR features, class index."""

    windows: NDArray[np.float32]  # (n, samples)
    rr: NDArray[np.float32]  # (n, N_RR)
    labels: NDArray[np.int64]  # index into CLASSES
    records: NDArray[np.str_]  # record of each beat

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, mask: NDArray[np.bool_]) -> BeatSet:
        return BeatSet(self.windows[mask], self.rr[mask], self.labels[mask], self.records[mask])

    def counts(self) -> dict[str, int]:
        return {c: int(np.count_nonzero(self.labels == i)) for i, c in enumerate(CLASSES)}


def aami_labels(samples: NDArray[np.int64], symbols: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Reference beats and their class index (beats whose symbol has an AAMI class)."""
    keep = [i for i, s in enumerate(symbols) if s in AAMI_OF_SYMBOL]
    cls = np.array([CLASSES.index(AAMI_OF_SYMBOL[symbols[i]]) for i in keep], dtype=np.int64)
    return np.asarray(samples, dtype=np.int64)[keep], cls


def beats_of_record(path: Path, cfg: RepresentationConfig, lead: int = 0) -> BeatSet:
    """Detect beats in a record with the monitor's ingest and label them from ``.atr``."""
    from monitor import StreamConfig, beats_of_signal
    from replay import load_record, resolve_record

    rec = load_record(resolve_record(str(path)))
    config = StreamConfig(lead=lead, window_pre_s=cfg.pre_s, window_post_s=cfg.post_s)
    beats = beats_of_signal(rec.samples, rec.fs, config, **rec.signal_description(), stream=path.name)
    ann = wfdb.rdann(str(path), "atr")
    ref, cls = aami_labels(ann.sample, ann.symbol)
    peaks = np.array([b.sample for b in beats], dtype=np.int64)
    window = round(0.150 * rec.fs)
    j = np.clip(np.searchsorted(ref, peaks), 1, max(ref.size - 1, 1))
    left, right = ref[j - 1], ref[np.minimum(j, ref.size - 1)]
    nearest = np.where(np.abs(peaks - left) <= np.abs(right - peaks), j - 1, np.minimum(j, ref.size - 1))
    matched = np.abs(ref[nearest] - peaks) <= window
    keep = [b for b, m in zip(beats, matched, strict=True) if m]
    windows = resample_windows([b.window for b in keep], [b.fs for b in keep], cfg)
    return BeatSet(windows, rr_features(keep), cls[nearest[matched]], np.full(len(keep), path.name))


def load_beatset(data_dir: Path, records: Sequence[str], cfg: RepresentationConfig, progress: bool = True) -> BeatSet:
    parts = []
    for i, rec in enumerate(records):
        if progress:
            print(f"\rreading beats: {rec} ({i + 1}/{len(records)})", end="", flush=True)
        parts.append(beats_of_record(Path(data_dir) / rec, cfg))
    if progress:
        print()
    return BeatSet(
        np.concatenate([p.windows for p in parts]),
        np.concatenate([p.rr for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.records for p in parts]),
    )
