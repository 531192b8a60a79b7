"""Scoring rhythm alarms against reference rhythm annotations (``ecg-eval --alarms``).

Reference episodes come from the ``+`` rhythm annotations of the ``.atr``
file: each aux note (``(VT``, ``(VFL``, ``(AFIB`` ...) holds until the next one
or the end of the record (aux notes on other annotations, such as qtdb's ST
and T-wave change marks ``(ST2-``, ``(T1+``, are no rhythm). A stretch from a
``[`` mark (ventricular flutter/fibrillation starts) to the next ``]`` (it
ends), the other PhysioNet convention, is a ``(VF`` episode. Each scored type names the reference rhythms it
covers and the monitor alarms that count as detecting it; touching or
overlapping intervals of one type are merged into one episode, on both sides.

* A reference episode is *detected* when an alarm episode of its type overlaps
  it. Episode sensitivity = detected / reference episodes (optionally only
  those lasting at least ``min_episode_s``).
* An alarm episode is a *true* alarm when it overlaps a reference episode of
  its type (of any length); episode positive predictivity = true / all alarm
  episodes; false alarms per hour = the others over the hours of signal.
* Alarm delay = the sample at which the alarm was raised (the signal that had
  arrived when the monitor decided, ``AlarmEvent.sample`` of the onset) minus
  the reference onset; 0 when the alarm was already on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from monitor.alarms import AlarmEvent

__all__ = ["ALARM_TYPES", "Episode", "TypeScore", "alarm_episodes", "reference_episodes", "score_alarms"]


@dataclass(frozen=True)
class AlarmType:
    name: str
    reference: frozenset[str]
    alarms: frozenset[str]


def _t(name: str, ref: Iterable[str], alarms: Iterable[str]) -> AlarmType:
    return AlarmType(name, frozenset(ref), frozenset(alarms))


ALARM_TYPES: tuple[AlarmType, ...] = (
    _t("VF/VFL + VT", ("(VF", "(VFL", "(VFIB", "(VT"), ("vfib", "vtach")),
    _t("VF/VFL", ("(VF", "(VFL", "(VFIB"), ("vfib",)),
    _t("VT (sustained alarm)", ("(VT",), ("vtach",)),
    _t("VT (any run alarm)", ("(VT",), ("vtach", "vrun")),
    _t("asystole", ("(ASYS",), ("asystole",)),
    _t("AF", ("(AFIB",), ("afib",)),
    _t("SVT", ("(SVTA",), ("svt",)),
    _t("bigeminy", ("(B",), ("bigeminy",)),
    _t("trigeminy", ("(T",), ("trigeminy",)),
    _t("bradycardia", ("(SBR",), ("brady", "brady_extreme")),
)


@dataclass(frozen=True)
class Episode:
    start: int
    end: int
    raised: int | None = None  # decision sample (alarm episodes only)


def _merge(episodes: Iterable[Episode]) -> list[Episode]:
    out: list[Episode] = []
    for e in sorted(episodes, key=lambda x: x.start):
        if out and e.start <= out[-1].end:
            last = out[-1]
            raised = min((r for r in (last.raised, e.raised) if r is not None), default=None)
            out[-1] = Episode(last.start, max(last.end, e.end), raised)
        else:
            out.append(e)
    return out


VF_MARK_RHYTHM = "(VF"  # what a ``[`` .. ``]`` stretch counts as


def _vf_marks(samples: Sequence[int], symbols: Sequence[str], length: int) -> list[Episode]:
    """Stretches from a ``[`` (ventricular flutter/fibrillation starts) to the next ``]`` (it ends).

    A ``[`` left open lasts to the end of the record; a ``]`` with no ``[`` before it
    ends a stretch that was on from the record's start."""
    eps: list[Episode] = []
    start: int | None = None
    first = True
    for s, sym in zip(samples, symbols, strict=True):
        if sym == "[" and start is None:
            start = s
        elif sym == "]":
            if start is not None:
                eps.append(Episode(start, s))
            elif first:
                eps.append(Episode(0, s))
            start = None
        if sym in "[]":
            first = False
    if start is not None:
        eps.append(Episode(start, length))
    return [e for e in eps if e.end > e.start]


def reference_episodes(record: Path, kinds: frozenset[str]) -> tuple[list[Episode], int, float]:
    """Merged reference episodes of ``record`` whose rhythm is in ``kinds``; also its length and rate.

    Rhythms come from ``+`` annotations (the aux note, e.g. ``(AFIB``, holds until
    the next ``+`` or the end) and, as ``(VF``, from ``[`` .. ``]`` marks."""
    header = wfdb.rdheader(str(record))
    ann = wfdb.rdann(str(record), "atr")
    length = int(header.sig_len)
    samples = [int(s) for s in ann.sample]
    marks = [
        (s, a.rstrip("\x00").strip())
        for s, sym, a in zip(samples, ann.symbol, ann.aux_note, strict=True)
        if sym == "+" and a
    ]
    marks = [(s, a) for s, a in marks if a.startswith("(")]
    eps = []
    for (s, a), nxt in zip(marks, [*marks[1:], (length, "")], strict=False):  # none at all: no episodes
        if a in kinds and nxt[0] > s:
            eps.append(Episode(s, nxt[0]))
    if VF_MARK_RHYTHM in kinds:
        eps.extend(_vf_marks(samples, list(ann.symbol), length))
    return _merge(eps), length, float(header.fs)


def alarm_episodes(events: Iterable[AlarmEvent], kinds: frozenset[str], stream: str, end: int) -> list[Episode]:
    """Merged alarm episodes of ``stream`` for alarm ``kinds`` (an alarm still on at the end lasts to ``end``)."""
    open_: dict[str, AlarmEvent] = {}
    eps: list[Episode] = []
    for e in events:
        if e.stream != stream or e.kind not in kinds:
            continue
        if e.state == "onset":
            open_[e.kind] = e
        elif e.state == "end" and e.kind in open_:
            on = open_.pop(e.kind)
            eps.append(Episode(on.onset_sample, max(e.sample, on.onset_sample), on.sample))
    for on in open_.values():
        eps.append(Episode(on.onset_sample, end, on.sample))
    return _merge(eps)


@dataclass
class TypeScore:
    name: str
    reference: int = 0
    detected: int = 0
    alarms: int = 0
    true_alarms: int = 0
    hours: float = 0.0
    delays_s: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # "record@start_s"
    false: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = np.asarray(self.delays_s)
        return {
            "type": self.name,
            "reference_episodes": self.reference,
            "detected": self.detected,
            "se": 100.0 * self.detected / self.reference if self.reference else None,
            "alarm_episodes": self.alarms,
            "true_alarms": self.true_alarms,
            "ppv": 100.0 * self.true_alarms / self.alarms if self.alarms else None,
            "false_per_hour": (self.alarms - self.true_alarms) / self.hours if self.hours else None,
            "delay_median_s": float(np.median(d)) if d.size else None,
            "delay_max_s": float(d.max()) if d.size else None,
            "missed": self.missed,
            "false": self.false,
        }


def _overlap(a: Episode, b: Episode) -> bool:
    return a.start < b.end and b.start < a.end


def score_alarms(
    data_dir: Path,
    records: Sequence[str],
    events: Sequence[AlarmEvent],
    *,
    min_episode_s: float = 0.0,
    types: Sequence[AlarmType] = ALARM_TYPES,
) -> list[TypeScore]:
    """Score alarm events (streams named like the records) per alarm type; see the module docstring."""
    scores = []
    for t in types:
        sc = TypeScore(t.name)
        for rec in records:
            refs, length, fs = reference_episodes(data_dir / rec, t.reference)
            alarms = alarm_episodes(events, t.alarms, rec, length)
            sc.hours += length / fs / 3600.0
            for r in refs:
                if (r.end - r.start) / fs < min_episode_s:
                    continue
                sc.reference += 1
                hits = [a for a in alarms if _overlap(a, r)]
                if hits:
                    sc.detected += 1
                    raised = min(a.raised if a.raised is not None else a.start for a in hits)
                    sc.delays_s.append(max(0.0, (raised - r.start) / fs))
                else:
                    sc.missed.append(f"{rec}@{r.start / fs:.0f}s")
            for a in alarms:
                sc.alarms += 1
                if any(_overlap(a, r) for r in refs):
                    sc.true_alarms += 1
                else:
                    sc.false.append(f"{rec}@{a.start / fs:.0f}s")
        scores.append(sc)
    return scores


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def alarm_markdown(tables: Mapping[float, list[TypeScore]], title: str) -> str:
    lines = [f"# {title}", ""]
    for min_s, scores in tables.items():
        which = "all reference episodes" if min_s <= 0 else f"reference episodes lasting at least {min_s:g} s"
        lines += [
            f"## {which}",
            "",
            "| type | ref episodes | detected | Se | alarm episodes | true | +P | false/h | delay median s "
            "| delay max s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for sc in scores:
            d = sc.as_dict()
            lines.append(
                f"| {sc.name} | {sc.reference} | {sc.detected} | {_f(d['se'])} | {sc.alarms} | {sc.true_alarms} | "
                f"{_f(d['ppv'])} | {_f(d['false_per_hour'], 2)} | {_f(d['delay_median_s'])} | {_f(d['delay_max_s'])} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def write_alarm_report(out: Path, title: str, tables: Mapping[float, list[TypeScore]], meta: dict[str, Any]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    report = {**meta, "title": title, "tables": {str(k): [s.as_dict() for s in v] for k, v in tables.items()}}
    (out / "alarms.json").write_text(json.dumps(report, indent=1))
    md = alarm_markdown(tables, title)
    (out / "alarms.md").write_text(md)
    return md
