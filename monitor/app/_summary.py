"""End-of-replay figures per stream, with detection scored against the record's reference beats."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import wfdb

from monitor.evaluation import MatchResult, match_beats, reference_beats
from monitor.ingest import StreamProcessor
from replay import RecordRef

__all__ = ["RecordSummary", "summarize_streams"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordSummary:
    """End-of-replay figures for one stream."""

    stream: str
    beats: int
    duration_s: float
    wall_s: float | None
    match: MatchResult | None

    @property
    def realtime_multiple(self) -> float | None:
        if not self.wall_s:
            return None
        return self.duration_s / self.wall_s

    def line(self) -> str:
        text = f"{self.stream}: {self.beats} beats in {self.duration_s / 60:.1f} min of ECG"
        if self.realtime_multiple is not None:
            text += f", {self.realtime_multiple:.0f}x real time"
        if self.match is not None:
            text += f"; vs reference: {self.match.describe()}"
        return text


def summarize_streams(
    procs: Iterable[StreamProcessor], refs: dict[str, RecordRef], *, score: bool
) -> list[RecordSummary]:
    """One summary per stream; ``score``: match the detected peaks of ended streams to their reference beats."""
    out = []
    for proc in procs:
        st = proc.stats
        wall = None
        if st.first_arrival is not None and st.last_arrival is not None:
            wall = st.last_arrival - st.first_arrival
        duration = (proc.samples_end - proc.origin) / proc.fs
        match = None
        ref = refs.get(proc.stream)
        if ref is not None and ref.has_annotations() and score and st.ended:
            try:
                ann = wfdb.rdann(str(ref.path), "atr")
            except Exception as exc:
                log.warning("cannot read reference annotations of %s: %s", ref.path, exc)
            else:
                beats = reference_beats(ann.sample, ann.symbol)
                beats = beats[beats < proc.samples_end]
                match = match_beats(beats, np.asarray(proc.peaks), round(0.150 * proc.fs))
        out.append(RecordSummary(proc.stream, st.beats, duration, wall, match))
    return out
