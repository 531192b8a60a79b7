from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor import ConfigError, DetectorConfig, StreamingDetector, match_beats
from tests.conftest import lead_mv, reference


def detect(x: np.ndarray, fs: float, chunk: int | None = None) -> np.ndarray:
    det = StreamingDetector(fs)
    step = x.size if chunk is None else chunk
    parts = [det.process(x[i : i + step]) for i in range(0, x.size, step)]
    parts.append(det.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("record", ["100", "208"])
def test_same_peaks_at_any_chunk_size(mitdb: Path, record: str) -> None:
    x, fs = lead_mv(mitdb, record, seconds=120)
    whole = detect(x, fs)
    assert whole.size > 100
    for chunk in (1, 7, 36, 1000):
        np.testing.assert_array_equal(detect(x, fs, chunk), whole, err_msg=f"chunk={chunk}")


def test_chunked_stream_with_irregular_chunk_sizes(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "203", seconds=120)
    rng = np.random.default_rng(1)
    det = StreamingDetector(fs)
    out, pos = [], 0
    while pos < x.size:
        n = int(rng.integers(1, 900))
        out.append(det.process(x[pos : pos + n]))
        pos += n
    out.append(det.flush())
    np.testing.assert_array_equal(np.concatenate(out), detect(x, fs))


@pytest.mark.parametrize(
    ("record", "floor"),
    [("100", 99.9), ("105", 98.5), ("108", 98.0), ("203", 98.0), ("207", 90.0), ("208", 99.0), ("222", 98.5)],
)
def test_accuracy_floor_on_real_records(mitdb: Path, record: str, floor: float) -> None:
    x, fs = lead_mv(mitdb, record)
    m = match_beats(reference(mitdb, record), detect(x, fs), round(0.15 * fs))
    assert m.f1 >= floor, f"{record}: {m}"


def test_peaks_are_sorted_unique_and_in_range(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "201", seconds=300)
    peaks = detect(x, fs)
    assert np.all(np.diff(peaks) > 0)
    assert peaks.min() >= 0 and peaks.max() < x.size


def test_invariant_to_polarity_offset_and_scale(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=300)
    ref = reference(mitdb, "100", sampto=x.size)
    for y in (-x, x + 5.0, 0.2 * x, 8.0 * x):
        m = match_beats(ref, detect(y, fs), round(0.15 * fs))
        assert m.f1 > 99.5, m


def test_flat_signal_gives_no_beats() -> None:
    assert detect(np.zeros(360 * 30), 360.0).size == 0
    assert detect(np.full(360 * 30, 2.5), 360.0).size == 0


def test_nan_runs_do_not_break_detection(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=120)
    y = x.copy()
    y[10000:12000] = np.nan  # ~5.5 s of lost signal
    peaks = detect(y, fs)
    assert np.all(np.isfinite(peaks))
    inside = peaks[(peaks > 10000 + 50) & (peaks < 12000 - 50)]
    assert inside.size == 0  # nothing invented inside the gap
    ref = reference(mitdb, "100", sampto=x.size)
    ref = ref[(ref < 10000) | (ref > 12500)]
    kept = peaks[(peaks < 10000) | (peaks > 12500)]
    assert match_beats(ref, kept, 54).se > 99.0


def test_all_nan_signal() -> None:
    assert detect(np.full(3600, np.nan), 360.0).size == 0


@pytest.mark.parametrize("fs", [128.0, 250.0, 500.0])
def test_other_sampling_rates(mitdb: Path, fs: float) -> None:
    from scipy.signal import resample_poly

    x, fs0 = lead_mv(mitdb, "100", seconds=300)
    y = resample_poly(x, int(fs), int(fs0))
    ref = np.round(reference(mitdb, "100", sampto=x.size) * fs / fs0).astype(np.int64)
    m = match_beats(ref, detect(y, fs), round(0.15 * fs))
    assert m.f1 > 99.5, (fs, m)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="fs"):
        StreamingDetector(0)
    with pytest.raises(ConfigError, match="fs"):
        StreamingDetector(float("nan"))
    with pytest.raises(ConfigError, match="too low"):
        StreamingDetector(8.0)
    with pytest.raises(ConfigError, match="band_hz"):
        DetectorConfig(band_hz=(15.0, 5.0))
    with pytest.raises(ConfigError, match="integration_s"):
        DetectorConfig(integration_s=-1)


def test_states_its_delay() -> None:
    det = StreamingDetector(360.0)
    assert 0.2 * 360 < det.delay_samples < 0.5 * 360


def test_bank_of_streams_matches_each_stream_alone(mitdb: Path) -> None:
    from monitor import DetectorBank

    records = ["100", "105", "203", "208", "232"]
    signals = {r: lead_mv(mitdb, r, seconds=90)[0] for r in records}
    alone = {r: detect(x, 360.0) for r, x in signals.items()}
    bank = DetectorBank(360.0, capacity=2)  # grows as streams are added
    got: dict[str, list[np.ndarray]] = {r: [] for r in records}
    rng = np.random.default_rng(7)
    pos = dict.fromkeys(records, 0)
    for r in records[:3]:
        bank.add(r)
    late = records[3:]
    while any(pos[r] < signals[r].size for r in records):
        if late and pos["100"] > 5000:  # streams join mid-way
            for r in late:
                bank.add(r)
            late = []
        chunks = {}
        for r in records:
            if r in bank and pos[r] < signals[r].size:
                n = 36 if rng.random() < 0.7 else int(rng.integers(1, 200))  # mostly equal lengths
                chunks[r] = signals[r][pos[r] : pos[r] + n]
                pos[r] += n
        for r, peaks in bank.process(chunks).items():
            got[r].append(peaks)
    for r in records:
        got[r].append(bank.flush(r))
        np.testing.assert_array_equal(np.concatenate(got[r]), alone[r], err_msg=r)
