"""The detector's and the quality tracker's cheaper paths give exactly what the plain ones give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor import DetectorBank, StreamingDetector
from monitor.detect import QualityTracker
from monitor.detect._qrs import _PIECE, _Q, _Q_MAX, DetectorConfig, _Design, _features
from tests.conftest import lead_mv


def _features_plain(
    bp: np.ndarray, bp_hist: np.ndarray, q_hist: np.ndarray, scale: float, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """The feature stage written out with one temporary per operation (the reference)."""
    ext = np.concatenate((bp_hist, bp), axis=1)
    bp_hist[...] = ext[:, -4:]
    d = (ext[:, 4:] + 2.0 * ext[:, 3:-1] - 2.0 * ext[:, 1:-3] - ext[:, :-4]) * scale
    q = np.rint(np.minimum(d * d, _Q_MAX) * _Q).astype(np.int64)
    qext = np.concatenate((q_hist, q), axis=1)
    if w > 1:
        q_hist[...] = qext[:, -(w - 1) :]
    cs = np.cumsum(qext, axis=1)
    sums = cs[:, w - 1 :].copy()
    sums[:, 1:] -= cs[:, : cs.shape[1] - w]
    return d, sums.astype(np.float64) * (1.0 / (_Q * w))


@pytest.mark.parametrize("w", [1, 2, 54])
@pytest.mark.parametrize(("rows", "n"), [(1, 5000), (40, 36), (3, 1), (2, 3)])
def test_in_place_features_equal_the_plain_formula(rows: int, n: int, w: int) -> None:
    rng = np.random.default_rng(rows * 1000 + n + w)
    for _ in range(3):
        bp = rng.standard_normal((rows, n)) * rng.choice([1e-3, 1.0, 1e4])
        h1 = rng.standard_normal((rows, 4))
        q1 = rng.integers(0, 10**12, (rows, w - 1))
        h2, q2 = h1.copy(), q1.copy()
        d1, m1 = _features_plain(bp, h1, q1, 180.0, w)
        d2, m2 = _features(bp, h2, q2, 180.0, w)
        for a, b in ((d1, d2), (m1, m2), (h1, h2), (q1, q2)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_design_unit_response_is_unchanged() -> None:
    # the amplitude floor comes from the feature stage: pinned to the plain formula's value
    k = _Design(360.0, DetectorConfig())
    t = np.arange(720) / 360.0
    from monitor.detect._filters import sosfilt_rows

    bp = sosfilt_rows(k.sos, np.exp(-0.5 * ((t - 1.0) / 0.012) ** 2)[None, :], np.zeros((1, k.sos.shape[0], 2)))
    _, m = _features_plain(bp, np.zeros((1, 4)), np.zeros((1, k.w - 1), dtype=np.int64), k.scale, k.w)
    assert k.floor == float(m.max()) * DetectorConfig().min_qrs_mv ** 2


def test_long_input_in_pieces_gives_the_peaks_of_small_chunks(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "208", seconds=400)
    assert x.size > 2 * _PIECE
    x = x.copy()
    x[50_000:50_500] = np.nan  # a gap across nothing in particular
    whole = StreamingDetector(fs)
    got = np.concatenate((whole.process(x), whole.flush()))
    small = StreamingDetector(fs)
    parts = [small.process(x[i : i + 36]) for i in range(0, x.size, 36)]
    parts.append(small.flush())
    np.testing.assert_array_equal(got, np.concatenate(parts))
    assert got.size > 400


def test_bank_with_long_chunks_of_unequal_length_matches_each_stream_alone(mitdb: Path) -> None:
    records = ["100", "203", "232"]
    signals = {r: lead_mv(mitdb, r, seconds=300)[0] for r in records}
    alone = {}
    for r, x in signals.items():
        det = StreamingDetector(360.0)
        alone[r] = np.concatenate([det.process(x[i : i + 36]) for i in range(0, x.size, 36)] + [det.flush()])
    bank: DetectorBank[str] = DetectorBank(360.0)
    for r in records:
        bank.add(r)
    got: dict[str, list[np.ndarray]] = {r: [] for r in records}
    cuts = {"100": [0, 70_000, 108_000], "203": [0, 20_000, 108_000], "232": [0, 70_000, 108_000]}
    for step in range(2):
        chunks = {r: signals[r][cuts[r][step] : cuts[r][step + 1]] for r in records}
        for r, peaks in bank.process(chunks).items():
            got[r].append(peaks)
    for r in records:
        got[r].append(bank.flush(r))
        np.testing.assert_array_equal(np.concatenate(got[r]), alone[r], err_msg=r)


def test_quality_takes_partial_blocks_as_the_block_path_does(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "105", seconds=60)
    whole = QualityTracker("a", fs)
    whole.process(x)
    chunked = QualityTracker("a", fs)
    rng = np.random.default_rng(3)
    pos = 0
    while pos < x.size:
        n = int(rng.integers(1, 700))
        chunked.process(x[pos : pos + n])
        pos += n
    assert list(chunked.states) == list(whole.states)
    assert chunked.take_blocks() == whole.take_blocks()
    assert not chunked.has_events and chunked.take_events() == []
