"""The cross-database report (``ecg-eval --db ...``): one table per database and a combined one.

A database is named on the command line as ``[NAME=]SOURCE``:

* ``DIR[:RECORDS]``: a folder of WFDB records with their reference ``.atr``
  files; RECORDS is ``all`` (the folder's ``RECORDS`` file, the default),
  ``ds1`` or ``ds2`` (the inter-patient split of mitdb) or a comma-separated
  list. NAME defaults to the folder's name.
* ``nst:NOISE:SNR[:RECORDS]``: noise stress records built on the nst protocol
  (:mod:`monitor.evaluation._noise`) from the clean records RECORDS (default
  ``118,119``, the ones nstdb itself uses) and the noise record NOISE (``em``,
  ``ma``, ``bw``) at SNR dB (a whole number). NAME defaults to
  ``nst-NOISE+SNR`` (``nst-em0``, ``nst-ma-6``). Beats are scored from minute 5
  on (the clean learning period nstdb leaves out); alarms over the whole record.

Each database is scored on beats (EC57, :mod:`monitor.evaluation._ec57`) over
its records whose ``.atr`` marks beats (none in vfdb: rhythm annotations only),
and on alarm episodes per kind (:mod:`monitor.evaluation._alarms`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.evaluation._alarms import TypeScore, alarm_markdown, write_alarm_report
from monitor.evaluation._ec57 import write_report

__all__ = ["DatabaseResult", "DatabaseSpec", "cross_markdown", "parse_database", "write_cross_report"]

NST_DEFAULT_RECORDS = "118,119"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class DatabaseSpec:
    """One ``--db`` argument, parsed."""

    name: str
    records: str  # all, ds1, ds2 or a comma-separated list
    folder: Path | None = None  # a folder of records (None: a noise stress mix)
    noise: str | None = None  # nst: the noise record's name
    snr_db: int | None = None

    @property
    def is_nst(self) -> bool:
        return self.noise is not None

    def describe(self) -> str:
        if self.is_nst:
            return f"records {self.records} + {self.noise} noise at {self.snr_db} dB SNR (nst protocol)"
        return f"{self.folder}, records {self.records}"


def parse_database(text: str, base: Path | None = None) -> DatabaseSpec:
    """Parse ``[NAME=]DIR[:RECORDS]`` or ``[NAME=]nst:NOISE:SNR[:RECORDS]`` (see the module docstring).

    A relative DIR is taken under ``base`` when one is given. Raises :class:`ConfigError`."""
    raw = text.strip()
    name, sep, source = raw.partition("=")
    if not sep:
        name, source = "", raw
    name, source = name.strip(), source.strip()
    if not source:
        raise ConfigError(f"--db {text!r}: give a folder (DIR[:RECORDS]) or a noise mix (nst:NOISE:SNR[:RECORDS])")
    if source.startswith("nst:"):
        parts = source.split(":", 3)
        if len(parts) < 3 or not parts[1].strip():
            raise ConfigError(f"--db {text!r}: a noise mix is nst:NOISE:SNR[:RECORDS], e.g. nst:em:0:118,119")
        noise = parts[1].strip()
        try:
            snr = int(parts[2])
        except ValueError:
            raise ConfigError(f"--db {text!r}: SNR {parts[2]!r} is not a whole number of dB") from None
        records = parts[3].strip() if len(parts) > 3 and parts[3].strip() else NST_DEFAULT_RECORDS
        spec = DatabaseSpec(name or f"nst-{noise}{snr}", records, noise=noise, snr_db=snr)
    else:
        folder_text, records = source, "all"
        head, colon, tail = source.rpartition(":")
        if colon and "/" not in tail and head:
            folder_text, records = head, tail.strip() or "all"
        folder = Path(folder_text)
        if base is not None and not folder.is_absolute():
            folder = base / folder
        spec = DatabaseSpec(name or folder.name, records, folder=folder)
    if not _NAME.fullmatch(spec.name):
        raise ConfigError(
            f"--db {text!r}: name {spec.name!r} must be letters, digits, '.', '_' or '-' (it names a folder "
            "of the report); give one as NAME=..."
        )
    return spec


@dataclass
class DatabaseResult:
    """What one database scored: EC57 beats (None without beat annotations) and alarm episodes."""

    spec: DatabaseSpec
    records: list[str]
    hours: float
    beats: dict[str, Any] | None  # summarize()'s output
    beat_records: list[str]
    alarms: Mapping[float, list[TypeScore]]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.spec.describe(),
            "records": self.records,
            "hours": self.hours,
            "beats": None if self.beats is None else {"records": self.beat_records, **self.beats},
            "alarms": {str(k): [s.as_dict() for s in v] for k, v in self.alarms.items()},
            "notes": self.notes,
        }


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


_BEAT_KEYS = ("qrs_se", "qrs_ppv", "veb_se", "veb_ppv", "veb_f1", "sveb_se", "sveb_ppv", "sveb_f1")
_BEAT_HEAD = ("QRS Se", "QRS +P", "VEB Se", "VEB +P", "VEB F1", "SVEB Se", "SVEB +P", "SVEB F1")


def _beat_rows(results: Sequence[DatabaseResult]) -> list[str]:
    lines = [
        "| database | records | hours | " + " | ".join(_BEAT_HEAD) + " |",
        "|" + "---|" * (3 + len(_BEAT_HEAD)),
    ]
    for r in results:
        if r.beats is None:
            lines.append(f"| {r.spec.name} | {len(r.records)} | {r.hours:.2f} |" + " n/a |" * len(_BEAT_HEAD))
            continue
        for kind in ("gross", "average"):
            cells = " | ".join(_f(r.beats[kind][k]) for k in _BEAT_KEYS)
            label = r.spec.name if kind == "gross" else f"{r.spec.name} (per-record average)"
            lines.append(f"| {label} | {len(r.beat_records)} | {r.hours:.2f} | {cells} |")
    return lines


def _alarm_rows(results: Sequence[DatabaseResult], min_episode_s: float) -> list[str]:
    longer = f"Se ≥ {min_episode_s:g} s" if min_episode_s > 0 else ""
    head = ["type", "database", "ref episodes", "detected", "Se", *([longer] if longer else [])]
    head += ["alarm episodes", "true", "+P", "false/h", "delay median s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if not results:
        return lines
    for i, t in enumerate(results[0].alarms[0.0]):
        for r in results:
            d = r.alarms[0.0][i].as_dict()
            if not d["reference_episodes"] and not d["alarm_episodes"]:
                continue
            cells = [t.name, r.spec.name, str(d["reference_episodes"]), str(d["detected"]), _f(d["se"], 1)]
            if longer:
                cells.append(_f(r.alarms[min_episode_s][i].as_dict()["se"], 1))
            cells += [str(d["alarm_episodes"]), str(d["true_alarms"]), _f(d["ppv"], 1)]
            cells += [_f(d["false_per_hour"]), _f(d["delay_median_s"], 1)]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def cross_markdown(results: Sequence[DatabaseResult], title: str, meta: Mapping[str, Any]) -> str:
    """The combined tables, then one section per database."""
    min_s = max((k for r in results for k in r.alarms), default=0.0)
    lines = [f"# {title}", ""]
    for key in ("command", "model"):
        if key in meta:
            lines.append(f"- {key}: `{meta[key]}`")
    lines += [
        "",
        "## Beats (AAMI EC57: gross over all beats, and the per-record average)",
        "",
        *_beat_rows(results),
        "",
        "## Alarm episodes (types with a reference or an alarm episode; Se over all reference episodes"
        + (f", and over those lasting at least {min_s:g} s)" if min_s > 0 else ")"),
        "",
        *_alarm_rows(results, min_s),
        "",
    ]
    for r in results:
        lines += [f"## {r.spec.name}: {r.spec.describe()}", ""]
        lines += [f"- {n}" for n in r.notes]
        lines += [f"- {len(r.records)} records, {r.hours:.2f} h of signal", ""]
        if r.beats is not None:
            lines += [*_beat_rows([r]), "", f"Per record and confusion matrix: `{r.spec.name}/report.md`.", ""]
        body = alarm_markdown(r.alarms, "x").split("\n", 2)[2]  # without its title
        lines += [body.replace("\n## ", "\n### ").replace("## ", "### ", 1)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_cross_report(out: Path, results: Sequence[DatabaseResult], title: str, meta: dict[str, Any]) -> Path:
    """``out/report.md`` and ``out/report.json`` (every database), and per database ``out/NAME/`` with the
    single-database reports (``report.*`` and ``confusion.png`` when it has beats, ``alarms.*``)."""
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        sub = out / r.spec.name
        if r.beats is not None:
            title_b = f"EC57 report: {r.spec.name} ({len(r.beat_records)} records)"
            write_report(sub, r.beats, title_b, {**meta, "records": r.beat_records})
        title_a = f"Rhythm alarm episodes: {r.spec.name} ({len(r.records)} records)"
        write_alarm_report(sub, title_a, r.alarms, {**meta, "records": r.records})
    report = {"title": title, **meta, "databases": {r.spec.name: r.as_dict() for r in results}}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    path = out / "report.md"
    path.write_text(cross_markdown(results, title, meta))
    return path
