"""The batcher as a state machine, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Beat, EngineConfigError
from engine._batcher import Batcher, BatcherConfig, ServiceTimeModel


def beat(stream: str, t: float) -> Beat:
    return Beat(stream, 0, 360.0, None, None, None, None, np.zeros(4, np.float32), 0, ready_at=t)


def fixed(seconds_per_batch: float) -> ServiceTimeModel:
    return ServiceTimeModel(overhead_s=seconds_per_batch, per_beat_s=0.0)


def test_a_full_batch_is_due_at_once() -> None:
    b = Batcher(BatcherConfig(max_batch=4, latency_budget_s=0.1), fixed(0.01))
    for i in range(3):
        b.on_beat(beat("a", 0.001 * i))
        assert b.on_deadline(0.003) is None
    b.on_beat(beat("b", 0.003))
    assert b.next_deadline() == -np.inf
    batch = b.on_deadline(0.003)
    assert batch is not None and len(batch) == 4 and len(b) == 0
    assert b.next_deadline() is None


def test_a_partial_batch_leaves_at_the_deadline_minus_service_time() -> None:
    b = Batcher(BatcherConfig(max_batch=64, latency_budget_s=0.100, margin_s=0.0), fixed(0.020))
    b.on_beat(beat("a", 1.000))
    b.on_beat(beat("b", 1.030))
    due = b.next_deadline()
    # its own service time, and room for a full batch that could be running when it is due
    assert due == pytest.approx(1.000 + 0.100 - 0.020 - 0.020)
    assert b.on_deadline(1.059) is None  # not yet
    batch = b.on_deadline(1.060)
    assert batch is not None and [x.stream for x in batch] == ["a", "b"]
    assert b.stats.late == 0 and b.stats.batch_sizes == {2: 1}


def test_alarm_streams_go_first_and_are_shed_last() -> None:
    alarm = {"icu-3"}
    cfg = BatcherConfig(max_batch=3, latency_budget_s=1.0, max_queue=4)
    b = Batcher(cfg, fixed(0.01), lambda s: s in alarm)
    shed = [b.on_beat(beat(s, 0.0)) for s in ["n1", "n2", "icu-3", "n1", "icu-3"]]  # the backend is busy
    assert len(b) == 4 and b.stats.shed == {"n1": 1}  # the oldest beat without an alarm went
    assert shed[:4] == [None] * 4 and shed[4] is not None and shed[4].stream == "n1"
    batch = b.on_deadline(0.0)
    assert batch is not None and [x.stream for x in batch] == ["icu-3", "icu-3", "n2"]


def test_late_beats_are_counted_but_still_classified() -> None:
    b = Batcher(BatcherConfig(max_batch=8, latency_budget_s=0.050, margin_s=0.0), fixed(0.010))
    b.on_beat(beat("a", 0.0))
    batch = b.on_deadline(0.200)  # the driver woke up far too late
    assert batch is not None and len(batch) == 1 and b.stats.late == 1


def test_service_time_model_learns_from_measurements() -> None:
    m = ServiceTimeModel(overhead_s=0.010, per_beat_s=0.001)
    for _ in range(200):
        for n in (16, 64, 256):
            m.observe(n, 0.001 + 0.0001 * n)
    assert m.predict(128) == pytest.approx(0.001 + 0.0128, rel=0.05)


def test_queue_stays_bounded_under_overload() -> None:
    b = Batcher(BatcherConfig(max_batch=256, latency_budget_s=10.0, max_queue=1000), fixed(0.01))
    taken = 0
    for i in range(5000):
        b.on_beat(beat(f"s{i % 7}", 0.0))
        assert len(b) <= 1000
        if i % 500 == 0:  # a slow backend frees up only now and then
            batch = b.on_deadline(0.0)
            taken += len(batch or [])
    assert b.stats.beats_in == 5000 and b.stats.beats_out == taken
    assert sum(b.stats.shed.values()) + taken + len(b) == 5000 and b.stats.shedding


def test_bad_settings_are_refused() -> None:
    with pytest.raises(EngineConfigError, match="latency_budget_s"):
        BatcherConfig(latency_budget_s=0)
    with pytest.raises(EngineConfigError, match="max_queue"):
        BatcherConfig(max_batch=512, max_queue=100)
