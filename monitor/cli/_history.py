"""``ecg-alerts history``: the alarm log, newest first, and the review strip of one alarm (``--strip``)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from monitor.cli._options import OptionParser, non_negative
from monitor.errors import EcgMonitorError
from monitor.outputs import PROG, AlarmLog, acks_of, default_path, local_time, printable, read_strip, strip_png
from monitor.protocol import ALARM_KINDS, PRIORITIES

__all__ = ["build_history_parser", "history_main", "parse_time"]


class _Parser(OptionParser):
    """Errors start with ``ecg-alerts: error:``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def build_history_parser() -> OptionParser:
    p = _Parser(prog=f"{PROG} history", description="Print the alarm log a monitor writes, newest first.")
    p.option("--log", env="ALARM_LOG", metavar="PATH", default=str(default_path(create=False)), help="the alarm log")
    p.option("--stream", env="STREAM", metavar="ID", help="only this stream")
    p.option("--kind", env="KIND", choices=ALARM_KINDS, metavar="KIND", help="only this kind")
    p.option("--priority", env="PRIORITY", choices=PRIORITIES, help="only this priority")
    p.option(
        "--since",
        env="SINCE",
        type=_when,
        metavar="WHEN",
        help="rows from WHEN: ISO-8601 time (local unless it has an offset) or a span back from now: -30s, -10m, "
        "-2h, -1d",
    )
    p.option("--until", env="UNTIL", type=_when, metavar="WHEN", help="rows before WHEN, written as for --since")
    p.option("--limit", env="LIMIT", type=non_negative(int), metavar="N", default=100, help="at most N rows, 0: all")
    p.flag("--json", env="JSON", help="one JSON object per line")
    p.option("--strip", metavar="ALARM_ID", help="the review strip of this alarm (10 s before to 10 s after its onset)")
    p.option("--png", metavar="FILE", help="with --strip: draw it into FILE (25 mm/s, 10 mm/mV, the onset marked)")
    return p


_SPAN = re.compile(r"^-?\s*(\d+(?:\.\d+)?)\s*([smhdw])$")
_SPAN_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_time(text: str, now: float | None = None) -> float:
    """Unix time of ``--since``/``--until``: ISO-8601 (local time unless it has an offset) or ``-10m``-style."""
    now = time.time() if now is None else now
    m = _SPAN.match(text.strip())
    if m:
        return now - float(m.group(1)) * _SPAN_SECONDS[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (2024-05-01T14:30) nor a span back from now (-10m, -2h, -1d)"
        ) from None


def _when(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_HISTORY_COLUMNS = ("time", "stream", "priority", "state", "kind", "text")


def _history_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    table = [list(_HISTORY_COLUMNS)]
    for r in rows:
        text = str(r["text"])
        if r["state"] == "end" and r["end_reason"]:
            text += f" ({r['end_reason']})"
        cells = [local_time(r["wall_time"]), r["stream"], str(r["priority"]).upper(), r["state"], r["kind"], text]
        table.append([printable(str(c)) for c in cells])
    widths = [max(len(row[i]) for row in table) for i in range(len(_HISTORY_COLUMNS) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in table]


def _join_spans(argv: Sequence[str]) -> list[str]:
    """``--since -10m`` as ``--since=-10m``: argparse would take ``-10m`` for an option."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("--since", "--until"):
            value = next(it, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


def history_main(argv: Sequence[str]) -> int:
    parser = build_history_parser()
    args = parser.parse_args(_join_spans(argv))
    if args.png and not args.strip:
        parser.error("--png needs --strip ALARM_ID (the alarm whose strip to draw)")
    try:
        log = AlarmLog.reader(args.log)
    except EcgMonitorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.strip:
        with log:
            return _strip(log, args)
    try:
        rows = log.history(
            stream=args.stream,
            kind=args.kind,
            priority=args.priority,
            since=args.since,
            until=args.until,
            limit=args.limit or None,
        )
    except EcgMonitorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        log.close()
    if args.json:
        for r in rows:
            print(json.dumps(r, separators=(",", ":")))
    elif rows:
        print("\n".join(_history_table(rows)))
    else:
        print(f"{PROG}: no alarms logged in {args.log} match", file=sys.stderr)
    sys.stdout.flush()
    return 0


def _strip(log: AlarmLog, args: argparse.Namespace) -> int:
    """``--strip ID [--png FILE]``: the strip's facts (or its samples with ``--json``), or its drawing."""
    try:
        strip = read_strip(log, args.strip)
        acks = acks_of(log, args.strip)
    except EcgMonitorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if strip is None:
        print(f"{PROG}: error: no strip of alarm {printable(args.strip)!r} in {args.log}", file=sys.stderr)
        return 1
    facts = {
        "alarm_id": strip.alarm_id,
        "stream": strip.stream,
        "kind": strip.kind,
        "onset_sample": strip.onset_sample,
        "sample": strip.sample,
        "fs": strip.fs,
        "lead": strip.lead,
        "seconds": round(strip.seconds, 3),
        "acknowledged": acks,
    }
    if args.png:
        try:
            path = strip_png(strip, args.png)
        except OSError as exc:
            print(f"{PROG}: error: --png {args.png}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"{PROG}: strip of {printable(strip.alarm_id)} ({strip.seconds:.1f} s) drawn in {path}", file=sys.stderr)
    elif args.json:
        values = [None if not math.isfinite(v) else round(float(v), 4) for v in strip.values]
        print(json.dumps({**facts, "values": values}, separators=(",", ":")))
    else:
        print(" ".join(f"{k}={printable(str(v))}" for k, v in facts.items()))
    return 0
