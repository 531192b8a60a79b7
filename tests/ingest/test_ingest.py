from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monitor import Ingest, StreamConfig, encode_data, encode_eos
from tests.conftest import lead_mv

KW = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])


def frames_of(x: np.ndarray, stream: str, fs: float, chunk: int) -> list[list[bytes]]:
    out = []
    for k, i in enumerate(range(0, x.size, chunk)):
        out.append(encode_data(stream, k, i, fs, x[i : i + chunk, None].astype("<f4"), **KW))  # type: ignore[arg-type]
    out.append(encode_eos(stream, len(out), x.size))
    return out


def test_beats_carry_window_and_rr_context(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    ingest = Ingest()
    beats = [b for parts in frames_of(x, "a", fs, 36) for b in ingest.feed(parts)]
    assert 60 < len(beats) < 90
    b = beats[10]
    cfg = StreamConfig()
    assert b.stream == "a" and b.fs == fs
    assert b.window.shape == (round(cfg.window_pre_s * fs) + round(cfg.window_post_s * fs),)
    assert b.window_start == b.sample - round(cfg.window_pre_s * fs)
    np.testing.assert_allclose(b.window, x[b.window_start : b.window_start + b.window.size], atol=1e-6)
    assert b.rr_prev == (b.sample - beats[9].sample) / fs
    assert b.rr_next == (beats[11].sample - b.sample) / fs
    assert beats[0].rr_prev is None
    assert ingest.streams["a"].stats.ended


def test_a_bad_stream_never_disturbs_another(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    clean = Ingest()
    expected = [b.sample for p in frames_of(x, "good", fs, 36) for b in clean.feed(p)]

    ingest = Ingest()
    got = []
    garbage = [[b"not json", b"123"], [b"{}"], [], [b"x" * 10000]]
    bad = frames_of(np.full(x.size, np.nan), "bad", fs, 36)
    for k, parts in enumerate(frames_of(x, "good", fs, 36)):
        got.extend(b.sample for b in ingest.feed(parts) if b.stream == "good")
        ingest.feed(garbage[k % len(garbage)])
        if k < len(bad):
            ingest.feed(bad[k])
    assert got == expected
    assert sum(ingest.rejected.values()) == len(frames_of(x, "good", fs, 36))
    assert ingest.streams["bad"].stats.beats == 0
    assert ingest.streams["bad"].stats.nan_samples == x.size


def test_gaps_are_counted_and_filled(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    frames = frames_of(x, "s", fs, 360)
    ingest = Ingest()
    for k, parts in enumerate(frames[:-1]):
        if k in (10, 11):
            continue  # two frames lost on the network
        ingest.feed(parts)
    ingest.feed(frames[10])  # one shows up late
    ingest.feed(frames[20])  # and a duplicate
    ingest.feed(frames[-1])
    ingest.feed(frames[5])  # data after the end of the stream
    proc = ingest.streams["s"]
    assert proc.tracker.frames_missing == 2 and proc.tracker.samples_missing == 720
    assert proc.stats.rejected["reordered"] == 1 and proc.stats.rejected["duplicate"] == 1
    assert proc.samples_end == x.size
    assert proc.stats.ended and proc.stats.rejected["after_eos"] == 1


def test_format_change_mid_stream_is_rejected_and_counted() -> None:
    ingest = Ingest()
    x = np.zeros((360, 1), dtype="<f4")
    ingest.feed(encode_data("s", 0, 0, 360.0, x, **KW))  # type: ignore[arg-type]
    ingest.feed(encode_data("s", 1, 360, 250.0, x, **KW))  # type: ignore[arg-type]
    assert ingest.streams["s"].stats.rejected["format_changed"] == 1


def test_stream_count_is_bounded_and_unsupported_rates_rejected() -> None:
    ingest = Ingest(StreamConfig(max_streams=2))
    x = np.zeros((10, 1), dtype="<f4")
    for name in ("a", "b", "c"):
        ingest.feed(encode_data(name, 0, 0, 360.0, x, **KW))  # type: ignore[arg-type]
    assert set(ingest.streams) == {"a", "b"} and ingest.rejected["too_many_streams"] == 1
    ingest2 = Ingest()
    ingest2.feed(encode_data("slow", 0, 0, 5.0, x, **KW))  # type: ignore[arg-type]
    assert ingest2.rejected["unsupported"] == 1 and not ingest2.streams


def test_lead_beyond_channels_falls_back_to_channel_0_with_a_note() -> None:
    ingest = Ingest(StreamConfig(lead=3))
    ingest.feed(encode_data("s", 0, 0, 360.0, np.zeros((10, 1), dtype="<f4"), **KW))  # type: ignore[arg-type]
    proc = ingest.streams["s"]
    assert not ingest.rejected and proc.stats.frames == 1
    assert (proc.lead, proc.lead_name, proc.stats.lead_fallback) == (0, "II", 1)


def test_an_internal_failure_is_confined_to_its_stream(mitdb: Path, monkeypatch: object) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=30)
    ingest = Ingest()
    frames_a = frames_of(x, "a", fs, 360)
    frames_b = frames_of(x, "b", fs, 360)
    ingest.feed(frames_a[0])
    ingest.feed(frames_b[0])

    def boom(*args: object) -> None:
        raise RuntimeError("detector exploded")

    bank = ingest.banks[fs]
    bank._deciders[bank._rows["a"]].on_candidate = boom  # type: ignore[union-attr, method-assign]
    for pa, pb in zip(frames_a[1:], frames_b[1:], strict=True):
        ingest.feed(pa)
        ingest.feed(pb)
    assert ingest.streams["a"].stats.error == "RuntimeError: detector exploded"
    assert ingest.streams["a"].stats.rejected["stream_failed"] > 0
    assert ingest.streams["b"].stats.beats > 25 and ingest.streams["b"].stats.ended


def test_beats_and_their_rr_context_do_not_depend_on_chunking(mitdb: Path) -> None:
    """Record 232 has long pauses: the RR after a beat must be the same whatever the frame size."""
    from monitor import beats_of_signal

    x, fs = lead_mv(mitdb, "232", seconds=600)
    whole = beats_of_signal(x, fs)
    ingest = Ingest()
    chunked = [b for parts in frames_of(x, "s", fs, 36) for b in ingest.feed(parts)]
    key = [(b.sample, b.rr_prev, b.rr_next, b.rr_local, b.rr_mean) for b in whole]
    assert key == [(b.sample, b.rr_prev, b.rr_next, b.rr_local, b.rr_mean) for b in chunked]
    assert any(b.rr_next is None for b in whole) and any(b.rr_next and b.rr_next > 1.5 for b in whole)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a.window, b.window)


def test_per_stream_state_stays_bounded_on_a_long_live_stream(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=600)
    ingest = Ingest()  # live monitoring: no peak history kept
    beats = [b for parts in frames_of(x, "s", fs, 3600) for b in ingest.feed(parts)]
    proc = ingest.streams["s"]
    assert len(beats) > 600 and proc.stats.beats == len(beats)
    assert proc.peaks == [] and proc.last_peak == beats[-1].sample
    assert len(proc.quality.states) <= 256 and proc.quality.known_until >= 590 * fs
    assert proc.ring.capacity == round(proc.config.buffer_s * fs)


def test_ingest_hands_over_technical_alarms_and_ended_streams_once(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    x[int(20 * fs) : int(35 * fs)] = np.nan  # the signal is lost for 15 s
    ingest = Ingest()
    msgs = frames_of(x, "a", fs, 3600)
    for parts in msgs[:-1]:
        ingest.feed(parts)
    assert ingest.take_ended() == []
    alarms = ingest.take_technical()
    assert [(a.kind, a.end is not None) for a in alarms] == [("signal lost", False), ("signal lost", True)]
    assert alarms[0].onset == alarms[1].onset and ingest.take_technical() == []
    ingest.feed(msgs[-1])
    assert ingest.take_ended() == [ingest.streams["a"]] and ingest.take_ended() == []


def test_a_second_lead_is_kept_for_display_at_the_monitored_leads_indices() -> None:
    from monitor.testing import frames_of as device_frames

    fs = 250.0
    n = 5 * 250
    two = np.stack([np.sin(np.arange(n) / 10.0), 0.5 * np.cos(np.arange(n) / 7.0)], axis=1).astype("<f4")
    kw: dict[str, Any] = dict(stream="b", chunk=50, eos=False, channels=("V1", "II"), units=("mV", "mV"))
    kw.update(gain=(1.0, 1.0), baseline=(0.0, 0.0))
    frames = device_frames(two, fs, **kw)
    frames += device_frames(two[:100], fs, seq=len(frames) + 3, start=n + 150, **kw)  # 150 samples missed
    ingest = Ingest(StreamConfig(lead="II", second_lead=True))
    for parts in frames:
        ingest.feed(parts)
    proc = ingest.streams["b"]
    assert proc.display is not None and proc.display.name == "V1" and proc.lead_name == "II"
    ring = proc.display.ring
    assert ring.end == proc.ring.end == n + 250  # a 150-sample gap, then 100 samples
    got = ring.read(ring.start, ring.end)[:, 0]
    want = np.concatenate((two[:, 0], np.full(150, np.nan), two[:100, 0]))[-got.size :]
    np.testing.assert_allclose(got, want, atol=1e-6)  # NaN where nothing came
    assert Ingest(StreamConfig(lead="II")).streams == {}
    plain = Ingest(StreamConfig(lead="II"))
    plain.feed(frames[0])
    assert plain.streams["b"].display is None  # kept only when asked for
