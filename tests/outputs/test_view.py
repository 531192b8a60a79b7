from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engine import LabeledBeat
from monitor import Ingest, LiveView, encode_data
from monitor.alarms import RhythmAnalyzer, RhythmConfig
from tests.conftest import lead_mv

KW = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])


def feed(ingest: Ingest, x: np.ndarray, stream: str, fs: float) -> list[LabeledBeat]:
    out = []
    for k, i in enumerate(range(0, x.size, 3600)):
        parts = encode_data(stream, k, i, fs, x[i : i + 3600, None].astype("<f4"), **KW)  # type: ignore[arg-type]
        out += [LabeledBeat(b, "N") for b in ingest.feed(parts)]
    return out


def test_live_view_redraws_in_place_with_heart_rate_and_recent_labels(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    ingest = Ingest()
    out = io.StringIO()
    view = LiveView(out=out, interactive=True, interval=1.0)
    beats = feed(ingest, x, "bed-1", fs)
    view.on_beats(beats)
    rhythm = RhythmAnalyzer("bed-1", fs, RhythmConfig())  # the monitor's one heart rate comes from here
    for lb in beats:
        rhythm.on_beat(lb.beat.sample, lb.label)
    _, vitals = rhythm.advance(beats[-1].beat.sample + 1, arrived=x.size)
    view.on_vitals(vitals[-1])
    view.refresh(ingest, now=10.0)
    first = out.getvalue()
    assert "bed-1" in first and "NNNN" in first and "ok" in first and "\x1b[F" not in first
    hr = vitals[-1].hr
    assert hr is not None and 60 < hr < 90 and f"{hr:5.0f}" in first
    view.refresh(ingest, now=10.5)  # within the interval: nothing drawn
    assert out.getvalue() == first
    view.refresh(ingest, now=11.5)
    assert out.getvalue()[len(first) :].startswith("\x1b[")  # cursor moved up: redrawn in place


def test_plain_view_prints_lines_and_shows_technical_alarms(mitdb: Path) -> None:
    x, fs = lead_mv(mitdb, "100", seconds=60)
    x[int(40 * fs) :] = np.nan  # the leads come off for the last 20 s
    ingest = Ingest()
    out = io.StringIO()
    view = LiveView(out=out, interactive=False, beats=True)
    view.on_beats(feed(ingest, x, "bed-2", fs))
    view.refresh(ingest, now=100.0)
    text = out.getvalue()
    assert "\x1b[" not in text and " beat N at " in text
    assert "ALARM signal lost" in text.splitlines()[-1]
