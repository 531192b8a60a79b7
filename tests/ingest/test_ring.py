from __future__ import annotations

import numpy as np
import pytest

from monitor import ConfigError, RingBuffer, SequenceTracker


def test_ring_buffer_reads_back_any_held_range_across_wraps() -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal(5000).astype(np.float32)
    ring = RingBuffer(700)
    pos = 0
    while pos < data.size:
        n = int(rng.integers(1, 300))
        ring.append(data[pos : pos + n])
        pos = min(pos + n, data.size)
        assert ring.end == pos
        lo = ring.start + int(rng.integers(0, pos - ring.start))
        hi = lo + int(rng.integers(0, pos - lo + 1))
        np.testing.assert_array_equal(ring.read(lo, hi)[:, 0], data[lo:hi])


def test_ring_buffer_chunk_larger_than_capacity_keeps_the_newest() -> None:
    ring = RingBuffer(10)
    ring.append(np.arange(25, dtype=np.float32))
    assert (ring.start, ring.end) == (15, 25)
    np.testing.assert_array_equal(ring.read(15, 25)[:, 0], np.arange(15, 25))


def test_ring_buffer_refuses_ranges_it_no_longer_holds() -> None:
    ring = RingBuffer(10)
    ring.append(np.arange(30, dtype=np.float32))
    with pytest.raises(IndexError):
        ring.read(5, 12)
    with pytest.raises(IndexError):
        ring.read(25, 31)
    with pytest.raises(ConfigError):
        RingBuffer(0)


def test_sequence_tracker_counts_gaps_duplicates_and_reordering() -> None:
    t = SequenceTracker()
    assert t.check(0, 0).accept
    t.advance(10)
    v = t.check(3, 40)  # frames 1 and 2 (samples 10..39) lost
    assert v.accept and v.gap == 30
    t.advance(40 - 10 + 10)
    assert t.frames_missing == 2 and t.samples_missing == 30
    late = t.check(1, 10)  # a missing frame arrives late: too late to use
    assert not late.accept and late.reason == "reordered"
    dup = t.check(3, 40)
    assert not dup.accept and dup.reason == "duplicate"
    assert (t.reordered, t.duplicates) == (1, 1)
    assert t.check(4, 50).accept
