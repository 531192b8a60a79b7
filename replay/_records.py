"""Finding and reading WFDB records."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import wfdb
from numpy.typing import NDArray

from monitor.errors import ConfigError, RecordError, RecordNotFoundError

__all__ = [
    "DATA_ENV",
    "LoadedRecord",
    "RecordHeader",
    "RecordRef",
    "cache_dir",
    "check_data_dir",
    "database_records",
    "load_record",
    "read_header",
    "resolve_record",
]

log = logging.getLogger(__name__)

DATA_ENV = "ECG_MONITOR_DATA"
OFFLINE_ENV = "ECG_MONITOR_OFFLINE"
DEFAULT_DB = "mitdb"


@dataclass(frozen=True)
class RecordRef:
    """A WFDB record on disk: ``path`` is the record path without extension."""

    name: str
    path: Path

    def has_annotations(self, extension: str = "atr") -> bool:
        return self.path.with_name(f"{self.path.name}.{extension}").is_file()


@dataclass(frozen=True)
class LoadedRecord:
    """Digital samples of a record, as a device would send them."""

    ref: RecordRef
    fs: float
    samples: NDArray[Any]  # (n, channels), raw values
    channels: tuple[str, ...]
    units: tuple[str, ...]
    gain: tuple[float, ...]
    baseline: tuple[float, ...]
    invalid: int | None

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    def signal_description(self) -> dict[str, Any]:
        """The wire format's per-stream fields (channels, units, gain, baseline, invalid)."""
        return {
            "channels": self.channels,
            "units": self.units,
            "gain": self.gain,
            "baseline": self.baseline,
            "invalid": self.invalid,
        }


@dataclass(frozen=True)
class RecordHeader:
    """What a record's header declares, checked: a sampling rate > 0 and a line for every signal."""

    ref: RecordRef
    fs: float
    channels: int


def _header_problem(path: Path, lines: list[str]) -> tuple[str | None, float, int]:
    """The first problem of a header's record and signal lines (None when sound), its rate and signal count.

    wfdb reads a rate it cannot parse as 250 Hz and fails obscurely on missing
    signal lines; a record replayed at the wrong rate gives wrong heart rates,
    so these are checked on the text before wfdb reads it.
    """
    if not lines:
        return f"its header {path} has no record line", math.nan, 0
    fields = lines[0].split()
    if len(fields) < 2 or not fields[1].isdigit():
        return f"the record line {lines[0]!r} of {path} has no signal count", math.nan, 0
    n_sig = int(fields[1])
    if len(fields) < 3:  # the WFDB format's default rate: said, never silent
        log.warning(
            "the record line %r of %s gives no sampling frequency: WFDB's default 250 Hz is used", lines[0], path
        )
        fields.append("250")
    rate = fields[2].split("/")[0]
    try:
        fs = float(rate)
    except ValueError:
        fs = math.nan
    if not (math.isfinite(fs) and fs > 0):
        return f"its header {path} gives the sampling frequency as {rate!r}, not a number > 0 Hz", math.nan, n_sig
    if "/" not in fields[0]:  # a multi-segment record lists segments, not signals
        if n_sig == 0:
            return f"its header {path} declares no signals", fs, n_sig
        if len(lines) - 1 < n_sig:
            found = len(lines) - 1
            return f"its header {path} declares {n_sig} signal(s) but has {found} signal line(s)", fs, n_sig
    return None, fs, n_sig


def read_header(ref: RecordRef) -> RecordHeader:
    """Read and check a record's header; a :class:`RecordError` names the file and the problem."""
    path = ref.path.with_name(ref.path.name + ".hea")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read record {ref.path}: cannot read its header {path} ({exc})") from None
    text = raw.decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines()]
    problem, fs, n_sig = _header_problem(path, [ln for ln in lines if ln and not ln.startswith("#")])
    if problem is not None:
        raise RecordError(f"cannot read record {ref.path}: {problem}")
    try:
        wfdb.rdheader(str(ref.path))
    except Exception as exc:
        raise RecordError(f"cannot read record {ref.path}: {type(exc).__name__}: {exc}") from exc
    return RecordHeader(ref, fs, n_sig)


def cache_dir() -> Path:
    """Per-user cache: ``$XDG_CACHE_HOME/ecg-monitor`` (default ``~/.cache/ecg-monitor``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecg-monitor"


def _data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is not None and str(data_dir):
        return Path(data_dir)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def check_data_dir(data_dir: str | Path | None) -> None:
    """Raise :class:`ConfigError` when a data folder is given (flag or ``$ECG_MONITOR_DATA``) and is not a folder."""
    ddir = _data_dir(data_dir)
    if ddir is None or ddir.is_dir():
        return
    what = "is a file, not a folder" if ddir.exists() else "does not exist"
    raise ConfigError(f"--data-dir {ddir} {what} (the folder of WFDB records; also read from ${DATA_ENV})")


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def _strip_ext(text: str) -> str:
    for ext in (".hea", ".dat", ".atr"):
        if text.endswith(ext):
            return text[: -len(ext)]
    return text


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.startswith(".") or Path(_strip_ext(name) + ".hea").is_file()


def resolve_record(
    name: str,
    data_dir: str | Path | None = None,
    *,
    database: str = DEFAULT_DB,
    offline: bool | None = None,
) -> RecordRef:
    """Find a record by path, or by name in the data dir, the cache, or PhysioNet.

    Order: a path to a record (``PATH/TO/RECORD``, with or without ``.hea``);
    else the name in the data directory (``data_dir``, else ``$ECG_MONITOR_DATA``);
    else in the per-user cache ``cache_dir()/<database>``; else, unless offline
    (``offline=True`` or ``$ECG_MONITOR_OFFLINE=1``), a download of the record
    from PhysioNet's ``database`` into that cache.
    """
    if not name or not name.strip():
        raise RecordNotFoundError("record name is empty")
    searched: list[str] = []
    if _looks_like_path(name):
        path = Path(_strip_ext(name)).expanduser()
        if path.with_name(path.name + ".hea").is_file():
            return RecordRef(path.name, path)
        raise RecordNotFoundError(f"record {name!r}: no header file {path}.hea")
    ddir = _data_dir(data_dir)
    places = [ddir] if ddir is not None else []
    cache = cache_dir() / database
    places.append(cache)
    for place in places:
        candidate = place / name
        searched.append(str(candidate) + ".hea")
        if candidate.with_name(name + ".hea").is_file():
            return RecordRef(name, candidate)
    if _offline(offline):
        why = f"downloads are off (${OFFLINE_ENV})"
    else:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            log.warning("record %s not found locally; downloading it from PhysioNet %s into %s", name, database, cache)
            wfdb.dl_database(database, str(cache), records=[name], annotators="all")
            if (cache / f"{name}.hea").is_file():
                return RecordRef(name, cache / name)
            why = f"PhysioNet {database!r} has no record {name!r}"
        except Exception as exc:  # network errors come in many types
            why = f"download from PhysioNet {database!r} failed ({type(exc).__name__}: {exc})"
    raise RecordNotFoundError(
        f"record {name!r} not found. Searched: {', '.join(searched)}; {why}. "
        f"Pass --data-dir DIR or set ${DATA_ENV} to a folder of WFDB records, or give a path to the record."
    )


def database_records(
    data_dir: str | Path | None = None, *, database: str = DEFAULT_DB, offline: bool | None = None
) -> list[RecordRef]:
    """Every record listed in the RECORDS file of a folder (the data dir or ``data_dir`` itself)."""
    ddir = _data_dir(data_dir)
    folders = [ddir] if ddir is not None else []
    folders.append(cache_dir() / database)
    for folder in folders:
        listing = folder / "RECORDS"
        if listing.is_file():
            names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
            refs = [resolve_record(n, folder, database=database, offline=True) for n in names]
            if not refs:
                raise RecordNotFoundError(f"{listing} lists no records")
            return refs
    if not _offline(offline):
        cache = cache_dir() / database
        try:
            log.warning("no RECORDS file found locally; downloading %s from PhysioNet into %s", database, cache)
            wfdb.dl_database(database, str(cache))
            return database_records(cache, database=database, offline=True)
        except Exception as exc:
            why = f"download failed ({type(exc).__name__}: {exc})"
    else:
        why = f"downloads are off (${OFFLINE_ENV})"
    raise RecordNotFoundError(
        f"no RECORDS file in {', '.join(str(f) for f in folders)}; {why}. "
        f"Pass --data-dir DIR or set ${DATA_ENV} to a folder holding a WFDB database."
    )


def load_record(ref: RecordRef) -> LoadedRecord:
    """Read every channel of a record as digital samples (wfdb), its header checked first (:func:`read_header`)."""
    fs = read_header(ref).fs
    try:
        rec = wfdb.rdrecord(str(ref.path), physical=False, return_res=32)
    except Exception as exc:
        raise RecordError(f"cannot read record {ref.path}: {type(exc).__name__}: {exc}") from exc
    names = tuple(str(s) for s in (rec.sig_name or []))
    units = tuple(str(u) for u in (rec.units or ["mV"] * len(names)))
    if rec.d_signal is not None and rec.adc_gain is not None:
        d = np.asarray(rec.d_signal)
        fmts = set(rec.fmt or [])
        invalids = {wfdb.io._signal.INVALID_SAMPLE_VALUE.get(f) for f in fmts}
        invalid = invalids.pop() if len(invalids) == 1 else None
        gain = tuple(float(g) if g else 200.0 for g in rec.adc_gain)
        baseline = tuple(float(b) for b in (rec.baseline or [0] * len(names)))
        lo, hi = (int(d.min()), int(d.max())) if d.size else (0, 0)
        dtype = np.int16 if lo >= -(2**15) and hi < 2**15 else np.int32
        samples: NDArray[Any] = np.asarray(d, dtype=dtype)
    elif rec.p_signal is not None:
        samples = np.asarray(rec.p_signal, dtype=np.float32)
        gain = (1.0,) * len(names)
        baseline = (0.0,) * len(names)
        invalid = None
    else:
        raise RecordError(f"record {ref.path} holds no signal")
    if samples.ndim != 2 or samples.shape[1] != len(names) or samples.shape[0] == 0:
        raise RecordError(f"record {ref.path} has an empty or inconsistent signal of shape {samples.shape}")
    return LoadedRecord(ref, fs, samples, names, units, gain, baseline, invalid)
