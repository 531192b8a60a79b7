"""WFDB annotation output: one ``<stream>.mon`` file per stream."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

from engine import LabeledBeat
from monitor.detect import TechnicalAlarm
from monitor.errors import ConfigError

__all__ = ["ANNOTATION_EXT", "AnnotationWriter"]

log = logging.getLogger(__name__)

ANNOTATION_EXT = "mon"


@dataclass
class _Track:
    fs: float
    samples: list[int] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    aux: list[str] = field(default_factory=list)
    written: bool = False

    def put(self, sample: int, symbol: str, aux: str = "") -> None:
        self.samples.append(sample)
        self.symbols.append(symbol)
        self.aux.append(aux)
        self.written = False


class AnnotationWriter:
    """Collects labelled beats per stream and writes ``DIR/<stream>.mon`` with wfdb.

    Samples are in the stream's own indexing and the file carries the stream's
    sampling rate, so ``wfdb.rdann(DIR/<stream>, 'mon')`` lines up with the
    source record. Technical alarms go in as signal-quality annotations (``~``)
    with the alarm in the aux note: ``(signal lost``, ``(leads off`` or
    ``(noisy signal`` at onset and ``(clean`` at the end; rhythm alarms go in as
    rhythm annotations (``+``: ``(VT``, ``(VFL``, ``(AFIB``, ``(ASYS``, ``(B``,
    ``(T``, ``(SVTA``, ``(SBR``, back to ``(N`` when the episode ends). A file is written when
    its stream ends and again on shutdown; a stream without annotations gets a
    file holding one comment annotation. Files are replaced atomically.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--annotations {directory!s}: cannot create the folder ({exc})") from None
        self._tracks: dict[str, _Track] = {}

    def add(self, beats: list[LabeledBeat]) -> None:
        for lb in beats:
            track = self._tracks.get(lb.beat.stream)
            if track is None:
                track = self._tracks[lb.beat.stream] = _Track(lb.beat.fs)
            track.put(lb.beat.sample, lb.symbol)

    def add_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        """Record a technical alarm's onset, or its end once it has one."""
        track = self._tracks.setdefault(alarm.stream, _Track(fs))
        if alarm.end is None:
            track.put(alarm.onset, "~", f"({alarm.kind}")
        else:
            if alarm.onset not in track.samples:  # opened and closed between two writes
                track.put(alarm.onset, "~", f"({alarm.kind}")
            track.put(alarm.end, "~", "(clean")

    def add_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        """A rhythm change (``+``) at ``sample``, e.g. ``(VT`` at an alarm's onset, ``(N`` at its end."""
        self._tracks.setdefault(stream, _Track(fs)).put(sample, "+", aux)

    def register(self, stream: str, fs: float) -> None:
        """Make sure a stream gets a file even if it never has a beat."""
        self._tracks.setdefault(stream, _Track(fs))

    def forget(self, stream: str) -> None:
        """Drop a stream's annotations (written already); a new stream with its id starts afresh."""
        self._tracks.pop(stream, None)

    def path(self, stream: str) -> Path:
        return self.dir / f"{stream}.{ANNOTATION_EXT}"

    def write(self, stream: str) -> Path:
        track = self._tracks[stream]
        if track.samples:
            order = np.argsort(np.asarray(track.samples, dtype=np.int64), kind="stable")
            samples = np.asarray(track.samples, dtype=np.int64)[order]
            symbols = [track.symbols[i] for i in order]
            aux = [track.aux[i] for i in order] if any(track.aux) else None
        else:
            samples = np.zeros(1, dtype=np.int64)
            symbols = ['"']
            aux = ["no beats detected"]
        # written beside the target, then renamed: a reader never sees a half-written file
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".writing-") as tmp:
            wfdb.wrann(stream, ANNOTATION_EXT, samples, symbols, aux_note=aux, fs=track.fs, write_dir=tmp)
            os.replace(Path(tmp) / f"{stream}.{ANNOTATION_EXT}", self.path(stream))
        track.written = True
        return self.path(stream)

    def write_all(self) -> list[Path]:
        return [self.write(s) for s, t in self._tracks.items() if not t.written]
