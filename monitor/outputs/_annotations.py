"""WFDB annotation output: one ``<name>.mon`` file per stream and device index space.

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

Device index spaces: samples in the files are the device's own indices, so
a stream whose device rebooted or restarted (its indices began again) has a
file per index space, each with increasing indices. The index space is the
segment label of the ingest (``monitor.ingest.Segment.label``): ``""`` for the
stream's first, ``b<boot>`` after a reboot, ``s<n>`` after a restart within
one run (a long gap keeps the label). Label ``""`` is the stream's file above
(an unbroken stream has only that one, exactly as before); any other label
(1 to 65 characters of letters, digits, ``.``, ``_``, ``:``, ``-``) gets the file
``_<stream>__<label>.mon``, both parts escaped as above (every character other
than a letter, digit or ``-`` as ``_`` and two hex digits): stream ``100``
after boot 7 writes ``_100__b7.mon``, ``bed.12`` after boot ``a:1`` writes
``_bed_2e12__ba_3a1.mon``. An escaped part never holds ``__`` nor ends with
``_``, so the first ``__`` splits the two and every labelled name has one
(stream, label) (:func:`annotation_record`); a name without ``__`` is the
first form. A labelled name longer than 251 characters (ids and boots full
of escaped characters) would not fit a file name: it is a ``ValueError``,
reported as that stream's output failure.
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
from monitor.outputs._located import Locate, stream_index

__all__ = ["ANNOTATION_EXT", "AnnotationWriter", "annotation_name", "annotation_record", "stream_of_annotation"]

log = logging.getLogger(__name__)

ANNOTATION_EXT = "mon"

# the stream-id rule of the wire format (monitor.protocol.STREAM_PATTERN)
_STREAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# what wfdb.wrann takes as a record name (its check: no character outside [-\w]), ASCII only
_WFDB_SAFE = re.compile(r"[A-Za-z0-9_-]+")
# characters an escaped name keeps as they are
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPED = re.compile(r"_([0-9a-f]{2})")
# a segment label (monitor.ingest.Segment.label) other than the first's ""
_LABEL = re.compile(r"[A-Za-z0-9._:-]{1,65}")
_SPLIT = "__"  # between the escaped stream and the escaped label
_MAX_NAME = 255 - len(ANNOTATION_EXT) - 1  # a file name holds 255 bytes


def _escape(text: str) -> str:
    return "".join(c if c in _KEPT else f"_{ord(c):02x}" for c in text)


def _unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def annotation_name(stream: str, label: str = "") -> str:
    """The record name (file name without ``.mon``) of a stream's annotations in the device index space
    ``label``; see the module docstring.

    Raises ``ValueError`` for a string that is not a valid stream id or label, or a name too long for a file.
    """
    if not _STREAM.fullmatch(stream):
        raise ValueError(f"not a valid stream id: {stream!r}")
    if label:
        if not _LABEL.fullmatch(label):
            raise ValueError(f"not a valid segment label: {label!r}")
        name = f"_{_escape(stream)}{_SPLIT}{_escape(label)}"
        if len(name) > _MAX_NAME:
            raise ValueError(f"the annotation file name of stream {stream!r}, segment {label!r} is too long")
        return name
    if _WFDB_SAFE.fullmatch(stream):
        return stream
    return "_" + _escape(stream)


def annotation_record(name: str) -> tuple[str, str]:
    """The stream id and segment label whose annotations are in record ``name`` (the inverse of
    :func:`annotation_name`).

    Raises ``ValueError`` for a name :func:`annotation_name` never returns.
    """
    stream, label = name, ""
    if name.startswith("_"):
        escaped, _, rest = name[1:].partition(_SPLIT)
        stream, label = _unescape(escaped), _unescape(rest)
    try:
        if annotation_name(stream, label) == name:
            return stream, label
    except ValueError:
        pass
    raise ValueError(f"not an annotation record name of a stream: {name!r}")


def stream_of_annotation(name: str) -> str:
    """The stream id whose annotations are in record ``name``, of any segment (see :func:`annotation_record`).

    Raises ``ValueError`` for a name :func:`annotation_name` never returns.
    """
    return annotation_record(name)[0]


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
    it holds a character wfdb refuses (``.``). Samples are the device's own
    indices (each event's stream index through ``locate``; the stream's index
    without one) and the file carries the stream's sampling rate, so
    ``wfdb.rdann(DIR/<name>, 'mon')`` lines up with the source record. After a
    reboot or device restart the samples of the new index space go to a file of
    their own (see the module docstring); every stream has its first file.
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
        self._tracks: dict[str, dict[str, _Track]] = {}  # stream -> segment label -> its file's annotations

    def _track(self, stream: str, fs: float, label: str = "") -> _Track:
        tracks = self._tracks.setdefault(stream, {})
        if "" not in tracks:  # the stream's first file, always written
            tracks[""] = _Track(fs)
        track = tracks.get(label)
        if track is None:
            track = tracks[label] = _Track(fs)
        return track

    def add(self, beats: list[LabeledBeat], locate: Locate = stream_index) -> None:
        for lb in beats:
            b = lb.beat
            at = locate(b.stream, b.sample)
            self._track(b.stream, b.fs, at.segment).put(at.sample, lb.symbol)

    def add_technical(self, alarm: TechnicalAlarm, fs: float, locate: Locate = stream_index) -> None:
        """Record a technical alarm's onset, or its end once it has one."""
        onset = locate(alarm.stream, alarm.onset)
        track = self._track(alarm.stream, fs, onset.segment)
        if alarm.end is None:
            track.put(onset.sample, "~", f"({alarm.kind}")
        else:
            if onset.sample not in track.samples:  # opened and closed between two writes
                track.put(onset.sample, "~", f"({alarm.kind}")
            end = locate(alarm.stream, alarm.end)
            self._track(alarm.stream, fs, end.segment).put(end.sample, "~", "(clean")

    def add_rhythm(self, stream: str, fs: float, sample: int, aux: str, locate: Locate = stream_index) -> None:
        """A rhythm change (``+``) at ``sample``, e.g. ``(VT`` at an alarm's onset, ``(N`` at its end."""
        at = locate(stream, sample)
        self._track(stream, fs, at.segment).put(at.sample, "+", aux)

    def register(self, stream: str, fs: float) -> None:
        """Make sure a stream gets a file even if it never has a beat."""
        self._track(stream, fs)

    def forget(self, stream: str) -> None:
        """Drop a stream's annotations (written already); a new stream with its id starts afresh."""
        self._tracks.pop(stream, None)

    def path(self, stream: str, label: str = "") -> Path:
        """The file of ``stream``'s annotations in the device index space ``label``."""
        return self.dir / f"{annotation_name(stream, label)}.{ANNOTATION_EXT}"

    def labels(self, stream: str) -> list[str]:
        """The device index spaces (segment labels) of a stream's files, first file first."""
        return list(self._tracks.get(stream, {}))

    def unwritten(self) -> list[str]:
        """The streams with a file not up to date."""
        return [s for s, tracks in self._tracks.items() if any(not t.written for t in tracks.values())]

    def write(self, stream: str) -> Path:
        """Write the stream's files; returns the path of its first file.

        A file that fails does not keep the stream's other files from being written; the first failure is
        raised after them.
        """
        error: Exception | None = None
        for label, track in self._tracks[stream].items():
            try:
                self._write(stream, label, track)
            except Exception as exc:  # raised once the other files are written
                error = error or exc
        if error is not None:
            raise error
        return self.path(stream)

    def _write(self, stream: str, label: str, track: _Track) -> None:
        if track.samples:
            order = np.argsort(np.asarray(track.samples, dtype=np.int64), kind="stable")
            samples = np.asarray(track.samples, dtype=np.int64)[order]
            symbols = [track.symbols[i] for i in order]
            aux = [track.aux[i] for i in order] if any(track.aux) else None
        else:
            samples = np.zeros(1, dtype=np.int64)
            symbols = ['"']
            aux = ["no beats detected"]
        name = annotation_name(stream, label)
        target = self.path(stream, label)
        # written beside the target, then renamed: a reader never sees a half-written file
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".writing-") as tmp:
            wfdb.wrann(name, ANNOTATION_EXT, samples, symbols, aux_note=aux, fs=track.fs, write_dir=tmp)
            os.replace(Path(tmp) / f"{name}.{ANNOTATION_EXT}", target)
        track.written = True

    def write_all(self) -> list[Path]:
        """Write every stream whose files are not up to date (the first failure stops it: see ``AnnotationSink``);
        returns the written streams' first files."""
        return [self.write(s) for s in self.unwritten()]
