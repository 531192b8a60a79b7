"""WFDB annotation output: one ``<name>.mon`` file per stream.

File names: wfdb takes a record name of letters, digits, ``-`` and ``_``
only, while a stream id may also hold ``.``. An id made of letters, digits,
``-`` and ``_`` is its own file name (``100.mon``, ``bed-1.mon``, ``icu_3.mon``).
Any other id is written as ``_`` followed by the id with every character other
than a letter, digit or ``-`` as ``_`` and its two lowercase hex digits:
``bed.12`` is ``_bed_2e12.mon``, ``a_b.c`` is ``_a_5fb_2ec.mon``. A stream id
never starts with ``_``, so the two forms never meet: every valid id has one
file name, every file name one id (:func:`annotation_name`,
:func:`stream_of_annotation`), and the longest name (64 escaped characters)
stays far below file-system limits.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

from engine import LabeledBeat
from monitor.detect import TechnicalAlarm
from monitor.errors import ConfigError

__all__ = ["ANNOTATION_EXT", "AnnotationWriter", "annotation_name", "stream_of_annotation"]

log = logging.getLogger(__name__)

ANNOTATION_EXT = "mon"

# the stream-id rule of the wire format (monitor.protocol.STREAM_PATTERN)
_STREAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# what wfdb.wrann takes as a record name (its check: no character outside [-\w]), ASCII only
_WFDB_SAFE = re.compile(r"[A-Za-z0-9_-]+")
# characters an escaped name keeps as they are
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPED = re.compile(r"_([0-9a-f]{2})")


def annotation_name(stream: str) -> str:
    """The record name (file name without ``.mon``) of a stream's annotations; see the module docstring.

    Raises ``ValueError`` for a string that is not a valid stream id.
    """
    if not _STREAM.fullmatch(stream):
        raise ValueError(f"not a valid stream id: {stream!r}")
    if _WFDB_SAFE.fullmatch(stream):
        return stream
    return "_" + "".join(c if c in _KEPT else f"_{ord(c):02x}" for c in stream)


def stream_of_annotation(name: str) -> str:
    """The stream id whose annotations are in record ``name`` (the inverse of :func:`annotation_name`).

    Raises ``ValueError`` for a name :func:`annotation_name` never returns.
    """
    stream = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), name[1:]) if name.startswith("_") else name
    if not _STREAM.fullmatch(stream) or annotation_name(stream) != name:
        raise ValueError(f"not an annotation record name of a stream: {name!r}")
    return stream


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
    """Collects labelled beats per stream and writes ``DIR/<name>.mon`` with wfdb.

    ``<name>`` is :func:`annotation_name` of the stream id: the id itself unless
    it holds a character wfdb refuses (``.``). Samples are in the stream's own
    indexing and the file carries the stream's sampling rate, so
    ``wfdb.rdann(DIR/<name>, 'mon')`` lines up with the source record.
    Technical alarms go in as signal-quality annotations (``~``) with the
    alarm in the aux note: ``(signal lost``, ``(leads off`` or ``(noisy signal``
    at onset and ``(clean`` at the end; rhythm alarms go in as rhythm
    annotations (``+``: ``(VT``, ``(VFL``, ``(AFIB``, ``(ASYS``, ``(B``, ``(T``,
    ``(SVTA``, ``(SBR``, back to ``(N`` when the episode ends). A file is
    written when its stream ends and again on shutdown; a stream without
    annotations gets a file holding one comment annotation. Files are replaced
    atomically.
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
        return self.dir / f"{annotation_name(stream)}.{ANNOTATION_EXT}"

    def unwritten(self) -> list[str]:
        """The streams whose file is not up to date."""
        return [s for s, t in self._tracks.items() if not t.written]

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
        name = annotation_name(stream)
        target = self.path(stream)
        # written beside the target, then renamed: a reader never sees a half-written file
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".writing-") as tmp:
            wfdb.wrann(name, ANNOTATION_EXT, samples, symbols, aux_note=aux, fs=track.fs, write_dir=tmp)
            os.replace(Path(tmp) / f"{name}.{ANNOTATION_EXT}", target)
        track.written = True
        return target

    def write_all(self) -> list[Path]:
        """Write every stream whose file is not up to date (the first failure stops it: see ``AnnotationSink``)."""
        return [self.write(s) for s in self.unwritten()]
