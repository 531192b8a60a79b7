"""How well the beat shape against the patient's dominant beat separates the classes, per record.

For each record, beats are found by the monitor's own detection path (which
measures every beat against its stream's template, :mod:`engine._template`),
matched to the reference beats within 150 ms, and grouped by AAMI class; per
class it prints the median of each shape feature and the share of beats that
are ``unlike`` and ``wide`` (once the template is learned).

Run: ``python benchmarks/beat_shape.py ../shared/data/mitdb 119 208 200 232 201 106 214``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import wfdb

from engine import AAMI_OF_SYMBOL, SHAPE_FEATURES
from monitor import StreamConfig, beats_of_signal
from replay import load_record, resolve_record


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0])
    for rec in argv[1:]:
        path = folder / rec
        r = load_record(resolve_record(str(path)))
        beats = beats_of_signal(r.samples, r.fs, StreamConfig(), **r.signal_description(), stream=rec)
        ann = wfdb.rdann(str(path), "atr")
        ref = {int(s): AAMI_OF_SYMBOL[y] for s, y in zip(ann.sample, ann.symbol, strict=True) if y in AAMI_OF_SYMBOL}
        keys = np.array(sorted(ref))
        by: dict[str, list[tuple[np.ndarray, bool, bool]]] = {}
        for b in beats:
            j = int(np.searchsorted(keys, b.sample))
            cls = None
            for k in (j - 1, j):
                if 0 <= k < len(keys) and abs(keys[k] - b.sample) <= 0.15 * r.fs:
                    cls = ref[int(keys[k])]
            if cls and b.shape is not None and b.shape.learned:
                by.setdefault(cls, []).append((b.shape.as_array(), b.shape.unlike, b.shape.wide))
        for cls, rows in sorted(by.items()):
            med = np.median(np.array([x for x, _, _ in rows]), axis=0)
            feats = " ".join(f"{n}={m:.2f}" for n, m in zip(SHAPE_FEATURES[:-1], med, strict=False))
            unlike = 100 * np.mean([u for _, u, _ in rows])
            wide = 100 * np.mean([w for _, _, w in rows])
            print(f"{rec} {cls} n={len(rows)} {feats} unlike={unlike:.1f}% wide={wide:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
