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


def test_vf_onset_and_offset_marks_are_vf_reference_episodes(tmp_path: Path) -> None:
    x, _ = ecg([0.8] * 40, 250.0)  # about 30 s
    path = write_record(tmp_path, "marks", x, 250.0)
    samples = [100, 400, 1000, 1500, 2000, 2600, 3000, 6000]
    symbols = ["]", "N", "[", "N", "]", "N", "[", "N"]  # VF on from the start to 100, 1000-2000, 3000 to the end
    wfdb.wrann("marks", "atr", np.array(samples), symbols, write_dir=str(tmp_path))
    episodes, length, _ = reference_episodes(path, frozenset({"(VF", "(VFL"}))
    assert [(e.start, e.end) for e in episodes] == [(0, 100), (1000, 2000), (3000, length)]
    assert reference_episodes(path, frozenset({"(VT", "(VFL"}))[0] == []  # the marks are VF, nothing else


def test_vf_marks_merge_with_the_rhythm_annotations_of_the_same_type(tmp_path: Path) -> None:
    x, _ = ecg([0.8] * 20, 250.0)
    path = write_record(tmp_path, "both", x, 250.0)
    wfdb.wrann("both", "atr", np.array([10, 900, 1000, 2000, 2500]), ["+", "[", "+", "]", "+"],
               aux_note=["(N", "", "(VFL", "", "(N"], write_dir=str(tmp_path))  # fmt: skip
    episodes, _, _ = reference_episodes(path, frozenset({"(VF", "(VFL"}))
    assert [(e.start, e.end) for e in episodes] == [(900, 2500)]


def test_aux_notes_of_non_rhythm_annotations_do_not_cut_an_episode(tmp_path: Path) -> None:
    # qtdb marks ST and T-wave changes with aux notes such as '(ST2-' on 's' and 'T' annotations
    x, _ = ecg([0.8] * 20, 250.0)
    path = write_record(tmp_path, "st", x, 250.0)
    wfdb.wrann("st", "atr", np.array([10, 1200, 1500, 3000]), ["+", "s", "T", "+"],
               aux_note=["(AFIB", "(ST2-", "(T1+", "(N"], write_dir=str(tmp_path))  # fmt: skip
    episodes, _, _ = reference_episodes(path, frozenset({"(AFIB"}))
    assert [(e.start, e.end) for e in episodes] == [(10, 3000)]
