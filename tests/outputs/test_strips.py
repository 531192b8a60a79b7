"""Alarm review strips: the ECG from 10 s before to 10 s after each onset, cut from the ring buffer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.alarms import AlarmEvent
from monitor.ingest import RingBuffer
from monitor.outputs._strips import Strip, StripRecorder

FS = 100.0


@dataclass
class Proc:
    stream: str
    fs: float = FS
    lead_name: str = "II"
    ring: RingBuffer = field(default_factory=lambda: RingBuffer(round(30 * FS)))


def onset(stream: str, sample: int, kind: str = "asystole") -> AlarmEvent:
    return AlarmEvent(stream, kind, "onset", sample, sample + 400, FS, kind)


def test_a_strip_is_kept_once_the_samples_10_s_after_the_onset_are_in() -> None:
    kept: list[Strip] = []
    rec = StripRecorder(kept.append)
    proc = Proc("bed-1")
    proc.ring.append(np.arange(2500, dtype=np.float32))  # 25 s
    rec.on_alarm(onset("bed-1", 2000))
    rec.on_alarm(AlarmEvent("bed-1", "asystole", "end", 2000, 2600, FS, "asystole"))  # ends are not strips
    assert rec.poll([proc]) == 0 and rec.pending() == 1  # 10 s after the onset is sample 3000
    proc.ring.append(np.arange(2500, 3100, dtype=np.float32))
    assert rec.poll([proc]) == 1 and rec.pending() == 0
    (strip,) = kept
    assert (strip.alarm_id, strip.kind, strip.lead, strip.onset_sample, strip.sample) == (
        "bed-1:asystole:2000",
        "asystole",
        "II",
        2000,
        1000,
    )
    assert strip.seconds == 20.0 and np.array_equal(strip.values, np.arange(1000, 3000, dtype=np.float32))
    assert rec.poll([proc]) == 0 and rec.kept == 1


def test_an_early_onset_starts_at_the_first_sample_and_an_ended_stream_keeps_what_it_has() -> None:
    kept: list[Strip] = []
    rec = StripRecorder(kept.append)
    proc = Proc("bed-2")
    proc.ring.append(np.ones(700, dtype=np.float32))
    rec.on_alarm(onset("bed-2", 300, "vt"))
    assert rec.poll([proc]) == 0
    rec.on_stream_end("bed-2")
    assert rec.poll([proc]) == 1
    assert kept[0].sample == 0 and len(kept[0].values) == 700


def test_samples_gone_from_the_ring_are_nan_and_other_streams_wait() -> None:
    kept: list[Strip] = []
    rec = StripRecorder(kept.append)
    proc, other = Proc("a"), Proc("b")
    proc.ring.append(np.zeros(1000, dtype=np.float32))
    rec.on_alarm(onset("a", 1500))  # its strip: samples 500-2500
    rec.on_alarm(onset("b", 1500))
    proc.ring.append(np.zeros(3000, dtype=np.float32))  # 40 s in a 30 s ring: samples before 1000 are gone
    assert rec.poll([proc, other]) == 1 and rec.pending() == 1
    values = kept[0].values
    assert len(values) == 2000 and np.isnan(values[:500]).all() and not np.isnan(values[500:]).any()
