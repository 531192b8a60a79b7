"""Wire format v2: reboots, long gaps, device indices, end-of-stream semantics, lead choice, rejection log."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from engine import Beat
from monitor import Ingest, StreamConfig, encode_data, encode_eos
from monitor.errors import ConfigError
from monitor.testing import FakeClock, ecg, frames_of

FS = 360.0
KW = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    beats = int(seconds / 0.8) + 2
    x, _ = ecg([0.8] * beats, FS, seed=seed, start_s=0.4, tail_s=0.4)
    return x[: int(seconds * FS)]


def _run(messages: list[list[bytes]], config: StreamConfig | None = None) -> tuple[Ingest, list[Beat]]:
    ingest = Ingest(config, clock=FakeClock())
    beats: list[Beat] = []
    for parts in messages:
        beats += ingest.feed(parts)
    return ingest, beats


def _key(b: Beat) -> tuple[object, ...]:
    return (b.sample, b.rr_prev, b.rr_next, b.rr_local, b.rr_mean, b.window_start, b.window.tobytes())


def test_an_unbroken_v2_stream_gives_exactly_the_beats_of_v1() -> None:
    x = _signal(40)
    _, v1 = _run(frames_of(x, FS, chunk=360))
    ingest, v2 = _run(frames_of(x, FS, chunk=360, boot=0xDEADBEEF12345678))
    assert len(v1) > 40 and [_key(b) for b in v1] == [_key(b) for b in v2]
    proc = ingest.streams["s"]
    assert proc.stats.ended and proc.boot == str(0xDEADBEEF12345678) and proc.stats.restarts == 0
    assert [b.sample for b in v2] == [proc.device_index(b.sample) for b in v2]


@pytest.mark.parametrize("reboot_at", [1, 30, 61, 63, 64, 100])
def test_a_reboot_is_recognised_at_any_frame(reboot_at: int) -> None:
    """1 s frames; the device reboots after ``reboot_at`` frames and starts again at seq 0, sample 0."""
    first = _signal(reboot_at, seed=1)
    second = _signal(30, seed=2)
    before = frames_of(first, FS, chunk=360, boot="a1", eos=False)
    after = frames_of(second, FS, chunk=360, boot="b2")  # with its end-of-stream at seq 30, start 10800
    ingest, beats = _run(before + after)
    proc = ingest.streams["s"]
    assert proc.stats.frames == reboot_at + 30 and not proc.stats.rejected
    assert proc.stats.ended and proc.stats.eos_received == 1
    assert (proc.stats.restarts, proc.stats.reboots, proc.boot) == (1, 1, "b2")
    # stream indices run on; the segment table gives the device's own indices and boot back
    boundary = reboot_at * 360
    assert proc.samples_end == boundary + 30 * 360
    segment = proc.segments.at(boundary)
    assert (segment.number, segment.boot, segment.start, segment.device_start) == (1, "b2", boundary, 0)
    assert proc.segments.at(boundary - 1).boot == "a1" and segment.label == "bb2"
    late = [b for b in beats if b.sample >= boundary]
    assert len(late) >= 30
    assert [proc.device_index(b.sample) for b in late] == [b.sample - boundary for b in late]
    assert late[0].rr_prev is None  # RR context starts afresh at the reboot


def test_frames_of_an_earlier_boot_are_rejected_and_a_persisting_one_is_a_conflict() -> None:
    x = _signal(20, seed=3)
    a = frames_of(x, FS, chunk=360, boot="a", eos=False)
    b = frames_of(x, FS, chunk=360, boot="b", eos=False)
    ingest, _ = _run([*a[:5], *b[:5], a[5]])  # one late frame of boot a: no conflict
    proc = ingest.streams["s"]
    assert proc.stats.rejected["old_boot"] == 1 and proc.stats.conflicts == 0
    ingest, _ = _run([*a[:5], b[0], a[5], b[1], a[6], b[2], a[7], b[3]])
    proc = ingest.streams["s"]
    assert proc.stats.rejected["old_boot"] == 3 and proc.stats.conflicts == 1
    assert "stream conflict" in proc.active_alarms and proc.boot == "b"
    ingest.feed(encode_eos("s", 2, 0, boot="a"))
    assert proc.stats.rejected["old_boot"] == 4 and not proc.eos
    assert ingest.unaccounted() == 0


def test_an_earlier_boot_takes_the_stream_back_when_the_new_one_falls_silent() -> None:
    """A stray frame under another boot (a second device, briefly) does not take the stream for good."""
    x = _signal(20, seed=9)
    a = frames_of(x, FS, chunk=360, boot="a", eos=False)
    b = frames_of(x, FS, chunk=360, boot="b", eos=False)
    ingest, _ = _run([*a[:5], b[0], *a[5:10]])
    proc = ingest.streams["s"]
    assert proc.boot == "a" and proc.stats.rejected["old_boot"] == 2 and proc.stats.conflicts == 0
    assert proc.stats.reboots == 2 and proc.stats.frames == 5 + 1 + 3
    assert [(g.boot, g.label) for g in proc.segments.segments] == [("a", ""), ("b", "bb"), ("a", "")]
    assert ingest.unaccounted() == 0


def test_a_gap_over_max_gap_in_one_boot_starts_a_segment_at_once_and_keeps_device_indices() -> None:
    x = _signal(30, seed=4)
    frames = frames_of(x, FS, chunk=360, boot=7, eos=False)
    jump = 100 * 360  # 100 s ahead (max_gap_s is 60)
    later = frames_of(x, FS, chunk=360, boot=7, seq=40, start=10 * 360 + jump)
    ingest, beats = _run(frames[:10] + later)
    proc = ingest.streams["s"]
    assert (proc.stats.long_gaps, proc.stats.restarts) == (1, 0) and not proc.stats.rejected
    assert proc.stats.frames == 40 and proc.stats.ended
    seg = proc.segments.current
    assert (seg.boot, seg.start, seg.device_start, seg.label) == ("7", 3600, 3600 + jump, "")
    late = [b for b in beats if b.sample >= 3600]
    assert late and all(proc.device_index(b.sample) == b.sample + jump for b in late)


def test_a_v1_restart_keeps_device_indices_in_the_segment_table() -> None:
    first, second = _signal(100, seed=7), _signal(20, seed=8)
    messages = frames_of(first, FS, chunk=360, eos=False) + frames_of(second, FS, chunk=360)
    ingest, beats = _run(messages)
    proc = ingest.streams["s"]
    assert proc.stats.restarts == 1 and proc.stats.ended and proc.stats.frames == 120
    seg = proc.segments.current
    assert (seg.number, seg.boot, seg.start, seg.device_start, seg.label) == (1, None, 36000, 0, "s1")
    late = [b for b in beats if b.sample >= 36000]
    assert late and [proc.device_index(b.sample) for b in late] == [b.sample - 36000 for b in late]


def test_v1_eos_of_total_samples_ends_a_stream_that_started_late_and_v2_is_strict() -> None:
    x = _signal(20, seed=5)
    frames = frames_of(x, FS, chunk=360, start=3600, eos=False)
    ingest, _ = _run([*frames, encode_eos("s", 20, 7200)])  # total sent, not the next index 10800
    proc = ingest.streams["s"]
    assert proc.stats.ended and proc.stats.eos_total == 1 and not proc.stats.rejected
    frames = frames_of(x, FS, chunk=360, start=3600, eos=False, boot="x")
    ingest, _ = _run([*frames, encode_eos("s", 20, 7200, boot="x")])
    proc = ingest.streams["s"]
    assert not proc.eos and proc.stats.rejected["eos_mismatch"] == 1
    ingest.feed(encode_eos("s", 20, 10800, boot="x"))
    assert proc.stats.ended and proc.stats.eos_early == 0


def test_an_eos_of_a_new_boot_ends_the_stream() -> None:
    x = _signal(5, seed=6)
    ingest, _ = _run([*frames_of(x, FS, chunk=360, boot="a", eos=False), encode_eos("s", 0, 0, boot="b")])
    assert ingest.streams["s"].stats.ended and ingest.unaccounted() == 0


@pytest.mark.parametrize(
    ("lead", "channels", "chosen", "fallback"),
    [
        (("MLII", "II", "V5"), ["V5", "MLII"], 1, 0),
        (("MLII", "II", "V5"), ["V5", "V2"], 0, 0),
        (("mlii", 1), [" MLII ", "V5"], 0, 0),
        (("MLII", 1), ["V5", "V2"], 1, 0),
        (("MLII", "II"), ["V5", "V2"], 0, 1),
        (1, ["V5"], 0, 1),
        ("V2", ["V5", "V2"], 1, 0),
    ],
)
def test_the_lead_is_chosen_per_stream_by_name_then_index(
    lead: object, channels: list[str], chosen: int, fallback: int
) -> None:
    config = StreamConfig(lead=lead)  # type: ignore[arg-type]
    x = np.zeros((360, len(channels)), dtype="<f4")
    x[:, chosen] = 0.5
    kw = dict(channels=channels, units=["mV"] * len(channels), gain=[1.0] * len(channels))
    ingest, _ = _run([encode_data("s", 0, 0, FS, x, baseline=[0.0] * len(channels), **kw)], config)  # type: ignore[arg-type]
    proc = ingest.streams["s"]
    assert (proc.lead, proc.lead_name, proc.stats.lead_fallback) == (chosen, channels[chosen], fallback)
    assert proc.stats.frames == 1 and proc.ring.read(0, 1)[0, 0] == pytest.approx(0.5)


@pytest.mark.parametrize("lead", [-1, (), ("",), (1.5,), (True,), ("x" * 65,)])
def test_bad_lead_preferences_are_config_errors(lead: object) -> None:
    with pytest.raises(ConfigError):
        StreamConfig(lead=lead)  # type: ignore[arg-type]


def test_a_list_of_leads_is_kept_as_a_tuple() -> None:
    assert StreamConfig(lead=["MLII", 0]).lead == ("MLII", 0)
    assert StreamConfig(lead=["MLII", 0]).leads == StreamConfig(lead=("MLII", 0)).leads


def test_rejections_are_logged_once_then_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    ingest = Ingest(clock=clock)
    x = np.zeros((36, 1), dtype="<f4")
    ingest.feed(encode_data("s", 0, 0, FS, x, **KW))  # type: ignore[arg-type]
    dup = encode_data("s", 0, 0, FS, x, **KW)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="monitor.ingest"):
        for _ in range(5):
            ingest.feed(dup)
            clock.advance(10.0)
        ingest.feed([b"not json"])
        assert len(caplog.records) == 2  # the first duplicate, the first unattributed rejection
        clock.advance(20.0)
        ingest.feed(dup)
        assert len(caplog.records) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert "stream 's'" in lines[0] and "duplicate" in lines[0]
    assert "unattributed" in lines[1] and "json" in lines[1]
    assert "5 more" in lines[2] and "duplicate" in lines[2]
    assert ingest.streams["s"].stats.rejected["duplicate"] == 6


def test_a_v2_sender_that_restarts_without_a_new_boot_is_followed_as_v1() -> None:
    x = _signal(100, seed=10)
    messages = frames_of(x, FS, chunk=360, boot=5, eos=False) + frames_of(x[:7200], FS, chunk=360, boot=5)
    ingest, _ = _run(messages)
    proc = ingest.streams["s"]
    assert (proc.stats.restarts, proc.stats.reboots, proc.stats.long_gaps) == (1, 0, 0)
    assert proc.stats.ended and proc.stats.frames == 120 and proc.segments.current.label == "s1"
