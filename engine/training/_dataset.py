"""Labelled beats from WFDB records, found by the monitor's own detection path.

Training sees beats exactly as the monitor hands them to the engine at run
time: the same detector, windows, RR context and shape against the stream's
dominant beat (``Ingest`` over the record),
each matched to the nearest reference beat within 150 ms for its label.
Detections with no reference beat have no label and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from numpy.typing import NDArray

from engine import AAMI_OF_SYMBOL, CLASSES, Beat, RepresentationConfig, context_features, resample_windows

__all__ = ["DS1", "DS2", "BeatSet", "aami_labels", "beats_of_record", "concat", "label_beats", "load_beatset"]

#: de Chazal's inter-patient split (paced records 102, 104, 107, 217 in neither).
DS1 = ("101 106 108 109 112 114 115 116 118 119 122 124 201 203 205 207 208 209 215 220 223 230").split()
DS2 = ("100 103 105 111 113 117 121 123 200 202 210 212 213 214 219 221 222 228 231 232 233 234").split()


@dataclass
class BeatSet:
    """Arrays of labelled beats: windows at the representation rate, context features, class index."""

    windows: NDArray[np.float32]  # (n, samples)
    context: NDArray[np.float32]  # (n, N_CONTEXT): RR and shape against the stream's dominant beat
    labels: NDArray[np.int64]  # index into CLASSES
    records: NDArray[np.str_]  # record (patient) of each beat

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, mask: NDArray[Any]) -> BeatSet:
        return BeatSet(self.windows[mask], self.context[mask], self.labels[mask], self.records[mask])

    def counts(self) -> dict[str, int]:
        return {c: int(np.count_nonzero(self.labels == i)) for i, c in enumerate(CLASSES)}


def aami_labels(samples: NDArray[np.int64], symbols: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Reference beats and their class index (beats whose symbol has an AAMI class)."""
    keep = [i for i, s in enumerate(symbols) if s in AAMI_OF_SYMBOL]
    cls = np.array([CLASSES.index(AAMI_OF_SYMBOL[symbols[i]]) for i in keep], dtype=np.int64)
    return np.asarray(samples, dtype=np.int64)[keep], cls


def label_beats(
    beats: Sequence[Beat], fs: float, ref: NDArray[np.int64], cls: NDArray[np.int64], cfg: RepresentationConfig,
    name: str,
) -> BeatSet:  # fmt: skip
    """Detected beats matched to the nearest reference beat within 150 ms; unmatched ones are left out."""
    if not beats or ref.size == 0:
        return BeatSet(
            np.zeros((0, cfg.n_samples), np.float32), context_features([]), np.zeros(0, np.int64), np.zeros(0, "<U1")
        )
    peaks = np.array([b.sample for b in beats], dtype=np.int64)
    window = round(0.150 * fs)
    j = np.clip(np.searchsorted(ref, peaks), 1, max(ref.size - 1, 1))
    left, right = ref[j - 1], ref[np.minimum(j, ref.size - 1)]
    nearest = np.where(np.abs(peaks - left) <= np.abs(right - peaks), j - 1, np.minimum(j, ref.size - 1))
    matched = np.abs(ref[nearest] - peaks) <= window
    keep = [b for b, m in zip(beats, matched, strict=True) if m]
    windows = resample_windows([b.window for b in keep], [b.fs for b in keep], cfg)
    return BeatSet(windows, context_features(keep), cls[nearest[matched]], np.full(len(keep), name))


def beats_of_record(path: Path, cfg: RepresentationConfig, lead: int = 0) -> BeatSet:
    """Detect beats in a record with the monitor's ingest and label them from ``.atr``."""
    from monitor import StreamConfig, beats_of_signal
    from replay import load_record, resolve_record

    rec = load_record(resolve_record(str(path)))
    config = StreamConfig(lead=lead, window_pre_s=cfg.pre_s, window_post_s=cfg.post_s)
    beats = beats_of_signal(rec.samples, rec.fs, config, **rec.signal_description(), stream=path.name)
    ann = wfdb.rdann(str(path), "atr")
    ref, cls = aami_labels(ann.sample, ann.symbol)
    return label_beats(beats, rec.fs, ref, cls, cfg, path.name)


def concat(parts: Sequence[BeatSet]) -> BeatSet:
    """One beat set of several, in order."""
    return BeatSet(
        np.concatenate([p.windows for p in parts]),
        np.concatenate([p.context for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.records for p in parts]),
    )


def load_beatset(data_dir: Path, records: Sequence[str], cfg: RepresentationConfig, progress: bool = True) -> BeatSet:
    parts = []
    for i, rec in enumerate(records):
        if progress:
            print(f"\rreading beats: {rec} ({i + 1}/{len(records)})", end="", flush=True)
        parts.append(beats_of_record(Path(data_dir) / rec, cfg))
    if progress:
        print()
    return concat(parts)
