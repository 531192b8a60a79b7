from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engine import LabeledBeat
from monitor import Ingest, LiveView, encode_data
from monitor.alarms import AlarmEvent, RhythmAnalyzer, RhythmConfig
from monitor.app import stream_status_of
from monitor.observe import StatusSnapshot, StreamStatus
from monitor.outputs import stream_status
from tests.conftest import lead_mv

KW = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])


def feed(ingest: Ingest, x: np.ndarray, stream: str, fs: float) -> list[LabeledBeat]:
    out = []
    for k, i in enumerate(range(0, x.size, 3600)):
        parts = encode_data(stream, k, i, fs, x[i : i + 3600, None].astype("<f4"), **KW)  # type: ignore[arg-type]
        out += [LabeledBeat(b, "N") for b in ingest.feed(parts)]
    return out


def snapshot(ingest: Ingest, now: float = 0.0) -> StatusSnapshot:
    """What the monitor would publish for these streams (the figures the view shows)."""
    streams = tuple(stream_status_of(p, now) for p in ingest.streams.values())
    return StatusSnapshot(messages=ingest.messages, rejected=ingest.rejected, streams=streams)


def test_live_view_redraws_in_place_with_heart_rate_and_recent_labels(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    ingest = Ingest()
    out = io.StringIO()
    view = LiveView(out=out, interactive=True, interval=1.0, width=120)
    beats = feed(ingest, x, "bed-1", fs)
    view.on_beats(beats)
    rhythm = RhythmAnalyzer("bed-1", fs, RhythmConfig())  # the monitor's one heart rate comes from here
    for lb in beats:
        rhythm.on_beat(lb.beat.sample, lb.label)
    _, vitals = rhythm.advance(beats[-1].beat.sample + 1)
    view.on_vitals(vitals[-1])
    view.refresh(snapshot(ingest), now=10.0)
    first = out.getvalue()
    assert "bed-1" in first and "NNNN" in first and "ok" in first and "\x1b[F" not in first
    hr = vitals[-1].hr
    assert hr is not None and 60 < hr < 90 and f"{hr:5.0f}" in first
    assert "60.0s" in first  # the stream's duration
    view.refresh(snapshot(ingest), now=10.5)  # within the interval: nothing drawn
    assert out.getvalue() == first
    assert not view.due(10.5) and view.due(10.5, force=True) and view.due(11.0)
    view.refresh(snapshot(ingest), now=11.5)
    assert out.getvalue()[len(first) :].startswith("\x1b[")  # cursor moved up: redrawn in place


def test_plain_view_prints_lines_and_shows_technical_alarms(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    x[int(40 * fs) :] = np.nan  # the leads come off for the last 20 s
    ingest = Ingest()
    out = io.StringIO()
    view = LiveView(out=out, interactive=False, beats=True)
    view.on_beats(feed(ingest, x, "bed-2", fs))
    snap = snapshot(ingest)
    assert snap.streams[0].quality_alarms == ("signal lost",) and snap.streams[0].quality == "signal lost"
    view.refresh(snap, now=100.0)
    text = out.getvalue()
    assert "\x1b[" not in text and " beat N at " in text
    assert "ALARM signal lost" in text.splitlines()[-1]


def test_stream_status_words_come_from_the_snapshot() -> None:
    ok = StreamStatus("s", fs=250.0, since_beat_s=1.0)
    assert stream_status(ok) == "ok"
    assert stream_status(StreamStatus("s", fs=250.0, quality="noisy", samples_missing=125)) == (
        "ok, noisy, 125 samples missing"
    )
    assert stream_status(StreamStatus("s", fs=250.0, since_beat_s=12.4)) == "no beat for 12 s"
    assert stream_status(StreamStatus("s", since_beat_s=12.4), now_sample_gap_s=20.0) == "ok"
    lost = StreamStatus("s", quality="signal lost", quality_alarms=("signal lost", "leads off"), since_beat_s=30.0)
    assert stream_status(lost) == "ALARM signal lost, leads off"
    assert stream_status(StreamStatus("s", ended=True, quality_alarms=("leads off",))) == "ended"
    assert stream_status(StreamStatus("s", ended=True, error="ValueError: bad")) == "ERROR ValueError: bad"


def test_plain_view_prints_alarms_and_the_last_line_of_an_ended_stream() -> None:
    out = io.StringIO()
    view = LiveView(out=out, interactive=False)
    onset = AlarmEvent("bed-3", "asystole", "onset", 2500, 3500, 250.0, "Asystole")
    view.on_alarm(onset)
    view.on_alarm(AlarmEvent("bed-3", "asystole", "update", 2500, 3600, 250.0, "Asystole"))  # not printed
    live = StreamStatus("bed-3", fs=250.0, beats=12, duration_s=20.0, since_beat_s=10.0)
    view.refresh(StatusSnapshot(streams=(live,)), now=1.0)
    view.on_alarm(AlarmEvent("bed-3", "asystole", "end", 2500, 4000, 250.0, "Asystole"))
    view.on_stream_end(StreamStatus("bed-3", fs=250.0, beats=14, duration_s=24.0, ended=True))
    assert out.getvalue().splitlines() == [
        "bed-3 ALARM HIGH Asystole at 10.0 s",
        "bed-3         250   ---      12     20.0s                            ALARM Asystole; ok",
        "bed-3 alarm ended: HIGH Asystole at 16.0 s",
        "bed-3         250   ---      14     24.0s                            ended",
    ]
    view.refresh(StatusSnapshot(streams=(StreamStatus("bed-3", ended=True),)), now=3.0)  # ended: no more lines
    assert len(out.getvalue().splitlines()) == 4


def test_interactive_header_counts_streams_messages_and_every_rejection() -> None:
    out = io.StringIO()
    view = LiveView(out=out, interactive=True, max_rows=1, width=120)
    streams = (
        StreamStatus("a", fs=360.0, rejected={"duplicate": 2}),
        StreamStatus("b", fs=360.0, ended=True, rejected={"after_eos": 1}),
    )
    view.refresh(StatusSnapshot(messages=40, rejected={"bad_magic": 3}, streams=streams), now=0.0)
    lines = out.getvalue().split("\n")
    assert lines[0] == "\x1b[2Kecg-monitor: 2 streams (1 ended), 40 messages, 6 rejected"
    assert lines[2].startswith("\x1b[2Ka ") and lines[3] == "\x1b[2K... and 1 more streams"


def _alarm(stream: str, kind: str) -> AlarmEvent:
    return AlarmEvent(stream, kind, "onset", 100, 100, 250.0, kind.upper())


def _visible(line: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)


def test_interactive_lines_are_cut_to_the_terminal_never_wrapped() -> None:
    streams = (StreamStatus("a-very-long-bed-name-on-ward-7", fs=360.0), StreamStatus("b", fs=250.0))
    for width in (80, 60, 40):
        out = io.StringIO()
        view = LiveView(out=out, interactive=True, width=width, colour=False)
        view.on_alarm(_alarm("b", "vtach"))
        view.on_alarm(_alarm("b", "couplet"))
        view.refresh(StatusSnapshot(messages=10**9, rejected={"bad_magic": 10**6}, streams=streams), now=0.0)
        lines = [_visible(ln) for ln in out.getvalue().split("\n") if _visible(ln)]
        assert len(lines) == 4  # header, column names, two streams: one line each
        assert all(len(ln) <= width - 1 for ln in lines), lines
        assert ("recent beats" in lines[1]) == (width >= 72)
        assert lines[3].startswith("b ")
        assert ("ALARM VTACH" in lines[3]) == (width >= 60)  # the highest priority first, cut at the edge


def test_interactive_rows_are_coloured_by_their_highest_priority_alarm() -> None:
    out = io.StringIO()
    view = LiveView(out=out, interactive=True, width=120)
    assert view.colour
    view.on_alarm(_alarm("b", "couplet"))
    view.on_alarm(_alarm("c", "couplet"))
    view.on_alarm(_alarm("c", "vtach"))
    streams = (
        StreamStatus("a", fs=360.0),
        StreamStatus("b", fs=360.0),
        StreamStatus("c", fs=360.0),
        StreamStatus("d", fs=360.0, quality_alarms=("leads_off",)),
    )
    view.refresh(StatusSnapshot(streams=streams), now=0.0)
    rows = {ln.split("\x1b[2K")[-1].lstrip("\x1b[0123456789;m")[:1]: ln for ln in out.getvalue().split("\n")[2:6]}
    assert "\x1b[1;31m" not in rows["a"] and "\x1b[33m" not in rows["a"]
    assert "\x1b[36m" in rows["b"]  # low: cyan
    assert "\x1b[1;31m" in rows["c"] and "\x1b[36m" not in rows["c"]  # high wins: red
    assert "\x1b[33m" in rows["d"]  # leads off, a medium technical alarm: yellow
    assert all(r.endswith("\x1b[0m") for k, r in rows.items() if k != "a")
    plain = io.StringIO()
    LiveView(out=plain, interactive=False).refresh(StatusSnapshot(streams=streams), now=0.0)
    assert "\x1b[" not in plain.getvalue()
