"""Alarm review strips: the ECG from 10 s before to 10 s after each onset, cut from the ring buffer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

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


def test_the_monitor_keeps_each_onsets_strip_in_the_alarm_log_and_draws_it(tmp_path: Path) -> None:
    from monitor.app import Monitor, MonitorConfig, Source
    from monitor.outputs import AlarmLog, read_strip, strip_png
    from monitor.testing import FakeClock, ecg, frames_of

    fs = 250.0
    x, _ = ecg([0.8] * 24, fs, tail_s=0.6, seed=1)
    rng = np.random.default_rng(2)
    pause = 0.03 * rng.standard_normal(round(16 * fs))  # no beats for 16 s: asystole, and 10 s after its onset
    path = tmp_path / "alarms.sqlite"
    clock = FakeClock()
    config = MonitorConfig(alarm_log=path, engine_thread=False)
    monitor = Monitor(Source(endpoint="inproc://unused"), config, clock=clock, record_alarms=True)
    monitor._open_outputs()
    messages = frames_of(np.concatenate((x, pause)), fs, stream="bed-1", chunk=25)
    for i in range(0, len(messages), 40):
        monitor.process(messages[i : i + 40])
        clock.advance(1.0)
    monitor.process()
    onset = next(e for e in monitor.alarm_events if e.kind == "asystole" and e.state == "onset")
    monitor._finish()
    monitor.alarm_log.close()  # type: ignore[union-attr]
    with AlarmLog.reader(path) as log:
        strip = read_strip(log, onset.alarm_id)
    assert strip is not None and strip.kind == "asystole" and strip.lead == "II" and strip.fs == fs
    assert strip.sample == onset.onset_sample - 10 * fs and strip.onset_sample == onset.onset_sample
    assert 19.0 <= strip.seconds <= 20.0 and np.isfinite(strip.values).all()
    png = strip_png(strip, tmp_path / "strip.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from monitor.cli._alerts import history_main

    out = tmp_path / "cli.png"
    assert history_main(["--log", str(path), "--strip", onset.alarm_id, "--png", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert history_main(["--log", str(path), "--strip", "bed-1:vf:1"]) == 1  # no such strip
    with pytest.raises(SystemExit) as stop:
        history_main(["--log", str(path), "--png", str(out)])
    assert stop.value.code == 2
