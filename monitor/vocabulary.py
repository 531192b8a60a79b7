"""The one vocabulary of the monitor: beat classes, AAMI <-> MIT-BIH symbols, and every alarm kind.

Everything that names a beat class or an alarm (rhythm logic, technical alarms,
the alert bus and its JSON Schema, the bridge, the alarm log, the live view,
metrics, annotation files) reads this module; a test keeps the shipped schema in
step with it. Beat classes are defined in the engine (which cannot import the
monitor) and re-exported here.

Alarm priorities follow IEC 60601-1-8 (``high``, ``medium``, ``low``);
``aux`` is the aux note of the ``+`` rhythm annotation written while the alarm is
active (``RHYTHM_AUX_ORDER`` says which one wins when several are).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Literal

from engine import AAMI_OF_SYMBOL, AAMI_SYMBOLS, BEAT_SYMBOLS, CLASSES

__all__ = [
    "AAMI_OF_SYMBOL",
    "AAMI_SYMBOLS",
    "ALARM_KINDS",
    "BEAT_SYMBOLS",
    "CATEGORIES",
    "CLASSES",
    "CLINICAL_KINDS",
    "END_REASONS",
    "END_REASON_PATTERNS",
    "HIGH",
    "LOW",
    "MEDIUM",
    "MONITORING_INTERRUPTED",
    "NORMAL_AUX",
    "PRIORITIES",
    "RHYTHM_AUX_ORDER",
    "TECHNICAL_KINDS",
    "AlarmKind",
    "Category",
    "Priority",
    "alarm_kind",
    "priority_rank",
    "rhythm_aux",
]

Priority = Literal["high", "medium", "low"]
Category = Literal["clinical", "technical"]

HIGH: Priority = "high"
MEDIUM: Priority = "medium"
LOW: Priority = "low"
#: Most urgent first.
PRIORITIES: tuple[Priority, ...] = (HIGH, MEDIUM, LOW)
CATEGORIES: tuple[Category, ...] = ("clinical", "technical")
#: Aux note of the ``+`` rhythm annotation when no rhythm alarm is active.
NORMAL_AUX = "(N"


@dataclass(frozen=True)
class AlarmKind:
    """One alarm kind: its wire name, category, IEC 60601-1-8 priority, display name and rhythm aux."""

    name: str
    category: Category
    priority: Priority
    text: str
    aux: str | None = None


def _clinical(name: str, priority: Priority, text: str, aux: str | None = None) -> AlarmKind:
    return AlarmKind(name, "clinical", priority, text, aux)


def _technical(name: str, priority: Priority, text: str) -> AlarmKind:
    return AlarmKind(name, "technical", priority, text)


#: Every alarm kind, clinical then technical, by wire name.
ALARM_KINDS: dict[str, AlarmKind] = {
    k.name: k
    for k in (
        _clinical("asystole", HIGH, "Asystole", "(ASYS"),
        _clinical("vfib", HIGH, "VF/VFL", "(VFL"),
        _clinical("vtach", HIGH, "VT", "(VT"),
        _clinical("vrun", MEDIUM, "Run PVCs", "(VT"),
        _clinical("couplet", LOW, "Couplet"),
        _clinical("bigeminy", MEDIUM, "Bigeminy", "(B"),
        _clinical("trigeminy", MEDIUM, "Trigeminy", "(T"),
        _clinical("pvc_frequent", LOW, "PVCs/min high"),
        _clinical("pause", MEDIUM, "Pause"),
        _clinical("brady", MEDIUM, "Brady", "(SBR"),
        _clinical("brady_extreme", HIGH, "Extreme brady", "(SBR"),
        _clinical("tachy", MEDIUM, "Tachy"),
        _clinical("tachy_extreme", HIGH, "Extreme tachy"),
        _clinical("afib", MEDIUM, "AF", "(AFIB"),
        _clinical("svt", MEDIUM, "SVT", "(SVTA"),
        _technical("signal_lost", MEDIUM, "Signal lost"),
        _technical("leads_off", MEDIUM, "Leads off"),
        _technical("noisy_signal", LOW, "Noisy signal"),
        _technical("beats_shed", MEDIUM, "Beats shed"),
        _technical("format_changed", MEDIUM, "Format changed"),
        # another device's samples may be on this patient's stream
        _technical("stream_conflict", HIGH, "Stream conflict"),
        # beat labels unavailable; rate, asystole and VF alarms go on
        _technical("engine_failed", MEDIUM, "Engine failed"),
        # an output (annotation file, alarm log, bus) failed for this stream; monitoring goes on
        _technical("output_failed", MEDIUM, "Output failed"),
        # cluster mode: the bed sends, but no worker analyses it (see MONITORING_INTERRUPTED)
        _technical("monitoring_interrupted", HIGH, "Monitoring interrupted"),
    )
}
MONITORING_INTERRUPTED = "monitoring_interrupted"
"""Cluster mode: a bed whose frames arrive but whose partition has had no live owner analysing it for longer
than the failover budget. A technical alarm of *high* priority (IEC 60601-1-8 leaves a technical alarm's
priority to the risk analysis): while it lasts no alarm at all, asystole and VF included, can be raised for the
bed, and nothing at the bedside shows it (the device sends on, unlike "signal lost" or "leads off", which are
medium: the bedside sees those and the other beds' alarms go on). It is raised only once the automatic
failover has had its budget, so it is rare and calls for someone to watch the patient now."""

CLINICAL_KINDS: tuple[str, ...] = tuple(k for k, v in ALARM_KINDS.items() if v.category == "clinical")
TECHNICAL_KINDS: tuple[str, ...] = tuple(k for k, v in ALARM_KINDS.items() if v.category == "technical")

#: Alarms that set the rhythm annotation, most serious first: the first active one names the rhythm.
RHYTHM_AUX_ORDER: tuple[str, ...] = (
    "vfib",
    "asystole",
    "vtach",
    "vrun",
    "svt",
    "afib",
    "bigeminy",
    "trigeminy",
    "brady_extreme",
    "brady",
)


def alarm_kind(name: str) -> AlarmKind:
    """The kind named ``name``; an unknown name is a programming error (``KeyError``)."""
    return ALARM_KINDS[name]


_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}


def priority_rank(priority: str) -> int:
    """0 for high, 1 medium, 2 low (sort key, most urgent first); unknown priorities sort last."""
    return _RANK.get(priority, len(PRIORITIES))


def rhythm_aux(active: Container[str]) -> str:
    """The rhythm aux note for the active alarm kinds (a set or a mapping): the most serious one's, else ``(N``."""
    for name in RHYTHM_AUX_ORDER:
        if name in active:
            return ALARM_KINDS[name].aux or NORMAL_AUX
    return NORMAL_AUX


#: Why an alarm ends: the fixed reasons, and (as regular expressions) the ones that carry a kind or a figure.
END_REASONS: tuple[str, ...] = (
    "condition cleared",  # the condition is absent for its clear/hold time (or a quality alarm's block cleared)
    "beats resumed",  # asystole: a beat again
    "stream ended",  # the device's end-of-stream
    "monitor stopped",  # SIGTERM / stop(): every active alarm ends
    "data resumed",  # signal lost (a silent device) ends when data comes again
    "caught up",  # beats shed: no beat shed for the clear time
    "engine recovered",  # engine failed: a batch labelled again
    "ended while its worker was replaced",  # cluster: an adopted alarm no longer active after the takeover
    "analysis resumed",  # monitoring interrupted: a worker owns the bed's partition and analyses it again
)
END_REASON_PATTERNS: tuple[str, ...] = (
    "^superseded by (" + "|".join(CLINICAL_KINDS) + ")$",  # a more serious alarm implies this one
    r"^device silent for [0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)? s$",  # the stream ended after --stream-timeout-s
)
