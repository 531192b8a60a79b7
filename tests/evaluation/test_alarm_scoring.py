from __future__ import annotations

from pathlib import Path

import numpy as np
import wfdb

from monitor.evaluation import reference_episodes
from monitor.testing import ecg, write_record


def test_a_record_without_rhythm_annotations_has_no_reference_episodes(tmp_path: Path) -> None:
    x, peaks = ecg([0.8] * 20, 250.0)
    path = write_record(tmp_path, "beats", x, 250.0)
    wfdb.wrann("beats", "atr", np.asarray(peaks), ["N"] * len(peaks), write_dir=str(tmp_path))
    episodes, length, fs = reference_episodes(path, frozenset({"(VT", "(AFIB"}))
    assert episodes == [] and length == x.size and fs == 250.0


def test_reference_episodes_run_from_one_rhythm_mark_to_the_next(tmp_path: Path) -> None:
    x, _ = ecg([0.8] * 20, 250.0)
    path = write_record(tmp_path, "rhythm", x, 250.0)
    wfdb.wrann("rhythm", "atr", np.array([10, 1000, 2000]), ["+", "+", "+"], aux_note=["(N", "(VT", "(N"],
               write_dir=str(tmp_path))  # fmt: skip
    episodes, _, _ = reference_episodes(path, frozenset({"(VT"}))
    assert [(e.start, e.end) for e in episodes] == [(1000, 2000)]
