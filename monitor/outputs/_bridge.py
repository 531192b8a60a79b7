"""``ecg-alerts``: the reference bedside bridge for the alert bus, and the alarm history.

``ecg-alerts --connect ENDPOINT`` subscribes to a monitor's alert bus (a ZeroMQ
XPUB socket, wire format in ``monitor/protocol/schema/alert-bus-v1.schema.json``) and
prints every alarm as it happens; it can also run a command or append a JSON
line per alarm. ``ecg-alerts history`` prints the alarm log a monitor keeps.

The receiving logic lives in :class:`AlertBridge` (no sockets, no output) so
that it can be driven and tested message by message; :func:`serve` is the
socket loop around it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, NoReturn

import zmq

from monitor.cli._options import EnvHelpFormatter, env_default, env_flag, setup_logging, stop_on_signals
from monitor.errors import ConfigError, EcgMonitorError, FrameError
from monitor.outputs._alarmlog import AlarmLog, default_path
from monitor.protocol import ALARM_KINDS, PRIORITIES, TOPICS, decode_message, is_stream_id, subscriptions
from monitor.transport import client_from_flags, secure_connect

__all__ = [
    "AlertBridge",
    "BridgeEvent",
    "BridgeOutput",
    "BridgeStats",
    "CommandRunner",
    "format_message",
    "main",
    "parse_time",
    "serve",
]

PROG = "ecg-alerts"


# --- receiving logic ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeEvent:
    """What one received message means to the bridge.

    ``body`` is the message to show (None for a rejected message, or a
    snapshot of an alarm already known to be active); ``missed`` counts the
    messages lost on ``topic`` just before this one; ``notes`` are remarks for
    the operator (gaps, a restarted monitor); ``dropped`` are the alarms
    forgotten because the monitor that raised them was replaced.
    """

    topic: str
    body: dict[str, Any] | None = None
    error: FrameError | None = None
    missed: int = 0
    restarted: bool = False
    notes: tuple[str, ...] = ()
    dropped: tuple[dict[str, Any], ...] = ()

    @property
    def is_alarm(self) -> bool:
        return self.body is not None and self.body["type"] == "alarm"


@dataclass
class BridgeStats:
    received: int = 0
    shown: int = 0
    alarms: int = 0
    duplicates: int = 0
    missed: int = 0
    gaps: int = 0
    seq_resets: int = 0
    restarts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class AlertBridge:
    """Validates bus messages, tracks sequence numbers and keeps the table of active alarms.

    It assumes one publishing monitor (one ``--connect``): a message from
    another monitor instance id means the monitor was restarted, so the
    alarms of the old instance are dropped and sequence tracking starts over.
    """

    def __init__(self) -> None:
        self.stats = BridgeStats()
        self.monitor: str | None = None
        self.active: dict[str, dict[str, dict[str, Any]]] = {}
        """stream -> alarm_id -> the alarm's latest body."""
        self._seq: dict[str, int] = {}

    def active_alarms(self, stream: str | None = None) -> list[dict[str, Any]]:
        """The alarms now active (of one stream, or of all), in the order they became known."""
        tables = [self.active.get(stream, {})] if stream is not None else list(self.active.values())
        return [body for table in tables for body in table.values()]

    def handle(self, parts: Sequence[bytes]) -> BridgeEvent | None:
        """Take one received message; None when there is nothing to show or say about it."""
        self.stats.received += 1
        try:
            topic, body = decode_message(parts)
        except FrameError as exc:
            self.stats.rejected[exc.reason] += 1
            return BridgeEvent(topic=_topic_text(parts), error=exc)
        notes: list[str] = []
        dropped: tuple[dict[str, Any], ...] = ()
        restarted = False
        if self.monitor is not None and body["monitor"] != self.monitor:
            restarted = True
            dropped = tuple(self.active_alarms())
            self.stats.restarts += 1
            note = f"monitor restarted ({self.monitor} -> {body['monitor']})"
            if dropped:
                note += f"; {len(dropped)} alarm(s) it had active dropped without an end"
            notes.append(note)
            self.active.clear()
            self._seq.clear()
        self.monitor = body["monitor"]

        missed = 0
        seq: int = body["seq"]
        last = self._seq.get(topic)
        if last is not None:
            if seq > last + 1:
                missed = seq - last - 1
                self.stats.missed += missed
                self.stats.gaps += 1
                notes.append(f"missed {missed} message{'s' if missed != 1 else ''} on {topic}")
            elif seq <= last:
                self.stats.seq_resets += 1
                notes.append(f"sequence went back on {topic} ({last} -> {seq})")
        self._seq[topic] = seq

        show = True
        if body["type"] == "alarm":
            show = self._track(body)
            if show:
                self.stats.alarms += 1
            else:
                self.stats.duplicates += 1
        if show:
            self.stats.shown += 1
        elif not notes:
            return None
        return BridgeEvent(
            topic=topic,
            body=body if show else None,
            missed=missed,
            restarted=restarted,
            notes=tuple(notes),
            dropped=dropped,
        )

    def _track(self, body: dict[str, Any]) -> bool:
        """Update the active table; False for a snapshot of an alarm already known to be active."""
        stream, alarm_id = body["stream"], body["alarm_id"]
        table = self.active.setdefault(stream, {})
        known = alarm_id in table
        if body["state"] == "end":
            table.pop(alarm_id, None)
        else:
            table[alarm_id] = body
        if not table:
            del self.active[stream]
        return not (body["state"] == "active" and known)


def _topic_text(parts: Sequence[bytes]) -> str:
    if not parts:
        return "?"
    return _printable(bytes(parts[0])[:80].decode("utf-8", "replace"))


# --- presentation --------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a message cannot move the cursor or clear the terminal)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _clock(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}"


def _num(value: float | None, fmt: str) -> str:
    return "--" if value is None else format(value, fmt)


def format_message(body: Mapping[str, Any]) -> str:
    """One readable line for a valid message body."""
    when = _clock(body["time"])
    kind = body["type"]
    if kind == "alarm":
        line = f"{when}  {body['stream']:<6} {body['priority'].upper():<6} {body['state']:<6} {body['text']}"
        if body["state"] == "end" and body.get("end_reason"):
            line += f" ({body['end_reason']})"
    elif kind == "vitals":
        alarms = ", ".join(body["active_alarms"]) or "none"
        line = (
            f"{when}  {body['stream']:<6} vitals HR {_num(body['hr'], '.0f')} bpm, "
            f"{body['pvc_per_min']:.1f} PVC/min, {body['quality']}, alarms: {alarms}"
        )
    elif kind == "beat":
        line = f"{when}  {body['stream']:<6} beat   {body['label']} at sample {body['sample']}"
        if body["rr_prev"] is not None:
            line += f", RR {body['rr_prev']:.3f} s"
    else:
        line = (
            f"{when}  status {body['health'].upper()}, {body['streams_active']}/{body['streams']} streams, "
            f"{body['alarms_active']} alarms active, engine {body['engine']}"
        )
        if body["problems"]:
            line += ": " + "; ".join(body["problems"])
    return _printable(line)


class CommandRunner:
    """Runs ``--exec`` for each alarm without waiting for it; finished commands are reaped by :meth:`reap`.

    The command gets the alarm in ``ECG_ALARM_*`` environment variables, no
    stdin, and the bridge's stderr as its stdout and stderr (the bridge's
    stdout stays one line per message). At most ``max_running`` commands run
    at once; an alarm arriving while that many are running is reported and
    its command skipped.
    """

    def __init__(self, argv: Sequence[str], err: IO[str], *, max_running: int = 16) -> None:
        if not argv:
            raise ValueError("empty command")
        self.argv = list(argv)
        self.err = err
        self.max_running = max_running
        self.running: list[tuple[subprocess.Popen[bytes], str]] = []
        self.started = 0
        self.failed = 0
        self.skipped = 0

    def start(self, body: Mapping[str, Any]) -> bool:
        """Start the command for one alarm; False (and a line on stderr) if it could not start."""
        self.reap()
        alarm_id = str(body.get("alarm_id", ""))
        if len(self.running) >= self.max_running:
            self.skipped += 1
            self._say(f"--exec skipped for {alarm_id}: {len(self.running)} commands still running")
            return False
        env = dict(os.environ)
        values = {
            "ECG_ALARM_STREAM": body.get("stream"),
            "ECG_ALARM_KIND": body.get("kind"),
            "ECG_ALARM_PRIORITY": body.get("priority"),
            "ECG_ALARM_STATE": body.get("state"),
            "ECG_ALARM_TEXT": body.get("text"),
            "ECG_ALARM_ID": alarm_id,
            "ECG_ALARM_JSON": json.dumps(body, separators=(",", ":")),
        }
        env.update({k: str(v or "").replace("\0", "") for k, v in values.items()})
        try:
            proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, stdout=_stderr_fd(self.err))
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self.failed += 1
            self._say(f"--exec: cannot run {self.argv[0]!r} for {alarm_id}: {exc}")
            return False
        self.started += 1
        self.running.append((proc, alarm_id))
        return True

    def reap(self) -> None:
        """Collect the commands that have finished; a non-zero exit status is reported."""
        still: list[tuple[subprocess.Popen[bytes], str]] = []
        for proc, alarm_id in self.running:
            code = proc.poll()
            if code is None:
                still.append((proc, alarm_id))
            elif code != 0:
                self.failed += 1
                self._say(f"--exec: {self.argv[0]!r} exited with status {code} for {alarm_id}")
        self.running = still

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for running commands; returns how many are still running."""
        deadline = time.monotonic() + timeout
        while True:
            self.reap()
            if not self.running or time.monotonic() >= deadline:
                return len(self.running)
            time.sleep(0.01)

    def _say(self, text: str) -> None:
        print(f"{PROG}: {_printable(text)}", file=self.err, flush=True)


def _stderr_fd(err: IO[str]) -> int | None:
    """A file descriptor for a child's stdout: ``err``'s, else 2, else inherit."""
    try:
        return err.fileno()
    except (AttributeError, OSError, ValueError):
        return 2 if _fd_open(2) else None


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class BridgeOutput:
    """Prints events, appends alarm lines to a file and starts ``--exec`` commands."""

    REPORTS_PER_REASON = 5

    def __init__(
        self,
        out: IO[str],
        err: IO[str],
        *,
        json_lines: bool = False,
        append: IO[str] | None = None,
        runner: CommandRunner | None = None,
    ) -> None:
        self.out = out
        self.err = err
        self.json_lines = json_lines
        self.append = append
        self.runner = runner
        self._reported: Counter[str] = Counter()

    def emit(self, event: BridgeEvent) -> None:
        for note in event.notes:
            self.say(note)
        if event.error is not None:
            reason = event.error.reason
            self._reported[reason] += 1
            n = self._reported[reason]
            if n <= self.REPORTS_PER_REASON:
                self.say(f"rejected a message on {event.topic}: {event.error}")
            if n == self.REPORTS_PER_REASON:
                self.say(f"further {reason!r} rejections are counted, not shown")
        body = event.body
        if body is None:
            return
        if self.json_lines:
            print(json.dumps(body, separators=(",", ":")), file=self.out, flush=True)
        else:
            print(format_message(body), file=self.out, flush=True)
        if event.is_alarm:
            if self.append is not None:
                self.append.write(json.dumps(body, separators=(",", ":")) + "\n")
                self.append.flush()
            if self.runner is not None:
                self.runner.start(body)

    def say(self, text: str) -> None:
        print(f"{PROG}: {_printable(text)}", file=self.err, flush=True)


def serve(
    sock: zmq.Socket[bytes],
    bridge: AlertBridge,
    output: BridgeOutput,
    *,
    count: int | None = None,
    idle_timeout: float | None = None,
    stop: threading.Event | None = None,
    tick: float = 0.2,
) -> str:
    """Receive until ``count`` alarms were shown, ``idle_timeout`` seconds pass without a message, or ``stop``.

    Returns why it ended: ``"count"``, ``"idle"`` or ``"stopped"``.
    """
    stop = stop or threading.Event()
    last = time.monotonic()
    while not stop.is_set():
        if output.runner is not None:
            output.runner.reap()
        wait = tick
        if idle_timeout is not None:
            left = last + idle_timeout - time.monotonic()
            if left <= 0:
                return "idle"
            wait = min(wait, left)
        if not sock.poll(max(1, int(wait * 1000)), zmq.POLLIN):
            continue
        last = time.monotonic()
        while True:  # drain what is queued before polling again
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            event = bridge.handle(parts)
            if event is not None:
                output.emit(event)
            if count is not None and bridge.stats.alarms >= count:
                return "count"
    return "stopped"


# --- command line --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _split(values: Sequence[str] | str | None) -> list[str]:
    if values is None:
        return []
    items = [values] if isinstance(values, str) else values
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=(
            "Show a monitor's alarms live (and optionally vitals, beats, status); run a command or append a "
            f"JSON line per alarm. '{PROG} history --help' for the alarm log. Every flag falls back to an "
            "ECG_MONITOR_<FLAG> environment variable."
        ),
        formatter_class=EnvHelpFormatter,
    )
    p.add_argument(
        "--connect",
        metavar="ENDPOINT",
        default=env_default("CONNECT"),
        help="the monitor's alert bus endpoint, e.g. tcp://127.0.0.1:5570 (ECG_MONITOR_CONNECT)",
    )
    p.add_argument(
        "--keys",
        metavar="DIR",
        default=env_default("KEYS"),
        help="CURVE keys folder holding the monitor's server.key and this bridge's key (ECG_MONITOR_KEYS)",
    )
    p.add_argument(
        "--key-name",
        metavar="NAME",
        default=env_default("KEY_NAME"),
        help="this bridge's client key name, made with: ecg-keys add-client DIR NAME (ECG_MONITOR_KEY_NAME)",
    )
    p.add_argument(
        "--stream",
        action="append",
        metavar="ID",
        help="only this stream (repeat, or comma-separated; default: all streams) (ECG_MONITOR_STREAM)",
    )
    p.add_argument(
        "--topics",
        default=env_default("TOPICS", "alarm"),
        help=f"comma-separated topics to show: {','.join(TOPICS)}",
    )
    p.add_argument(
        "--exec",
        dest="exec_cmd",
        metavar="CMD",
        default=env_default("EXEC"),
        help="run CMD (no shell) for each alarm shown, with ECG_ALARM_STREAM, _KIND, _PRIORITY, _STATE, _TEXT, "
        "_ID and _JSON in its environment; it runs in the background",
    )
    p.add_argument("--append", metavar="FILE", default=env_default("APPEND"), help="append a JSON line per alarm")
    p.add_argument("--json", action="store_true", default=env_flag("JSON"), help="print message bodies as JSON")
    p.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        default=env_default("COUNT"),
        help="exit after N alarms shown (exit status 1 if --timeout ends the wait first)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=env_default("TIMEOUT"),
        metavar="S",
        help="exit after S seconds without a message",
    )
    p.add_argument("--log-level", default=env_default("LOG_LEVEL", "warning"), help="logging level")
    return p


def build_history_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"{PROG} history",
        description=(
            "Print the alarm log a monitor writes, newest first. Every flag falls back to an "
            "ECG_MONITOR_<FLAG> environment variable (the log: ECG_MONITOR_ALARM_LOG)."
        ),
        formatter_class=EnvHelpFormatter,
    )
    p.add_argument(
        "--log",
        metavar="PATH",
        default=env_default("ALARM_LOG"),
        help=f"the alarm log; when not given: {default_path(create=False)}",
    )
    p.add_argument("--stream", metavar="ID", default=env_default("STREAM"), help="only this stream")
    p.add_argument("--kind", choices=ALARM_KINDS, default=env_default("KIND"), metavar="KIND", help="only this kind")
    p.add_argument("--priority", choices=PRIORITIES, default=env_default("PRIORITY"), help="only this priority")
    p.add_argument(
        "--since",
        default=env_default("SINCE"),
        metavar="WHEN",
        help="ISO-8601 time (local unless it has an offset) or a span back from now: -30s, -10m, -2h, -1d",
    )
    p.add_argument("--until", default=env_default("UNTIL"), metavar="WHEN", help="as --since; rows before it")
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        default=env_default("LIMIT", "100"),
        help="at most N rows (0: all)",
    )
    p.add_argument("--json", action="store_true", default=env_flag("JSON"), help="one JSON object per line")
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


_HISTORY_COLUMNS = ("time", "stream", "priority", "state", "kind", "text")


def _history_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    table = [list(_HISTORY_COLUMNS)]
    for r in rows:
        text = str(r["text"])
        if r["state"] == "end" and r["end_reason"]:
            text += f" ({r['end_reason']})"
        cells = [_clock(r["wall_time"]), r["stream"], str(r["priority"]).upper(), r["state"], r["kind"], text]
        table.append([_printable(str(c)) for c in cells])
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
    try:
        since = None if args.since is None else parse_time(args.since)
        until = None if args.until is None else parse_time(args.until)
    except ValueError as exc:
        parser.error(str(exc))
    if args.limit < 0:
        parser.error(f"--limit must be 0 (all) or more, got {args.limit}")
    path = args.log or default_path(create=False)
    try:
        log = AlarmLog.reader(path)
    except EcgMonitorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        rows = log.history(
            stream=args.stream,
            kind=args.kind,
            priority=args.priority,
            since=since,
            until=until,
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
        print(f"{PROG}: no alarms logged in {path} match", file=sys.stderr)
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["history"]:
        return history_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.connect:
        parser.error("--connect is required (or set ECG_MONITOR_CONNECT), e.g. --connect tcp://127.0.0.1:5570")
    try:
        curve = client_from_flags(args.keys, args.key_name, "this bridge's")
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    streams = _split(args.stream if args.stream is not None else env_default("STREAM"))
    for s in streams:
        if not is_stream_id(s):
            parser.error(f"--stream {s!r}: not a stream id (letters, digits, '.', '_', '-'; at most 64)")
    try:
        prefixes = subscriptions(_split(args.topics), streams)
    except ValueError as exc:
        parser.error(f"--topics: {exc}")
    if not prefixes:
        parser.error("--topics is empty")
    runner = None
    if args.exec_cmd:
        try:
            runner = CommandRunner(shlex.split(args.exec_cmd), sys.stderr)
        except ValueError as exc:
            parser.error(f"--exec {args.exec_cmd!r}: {exc}")
    count = int(args.count) if args.count is not None else None
    idle = float(args.timeout) if args.timeout is not None else None

    append: IO[str] | None = None
    if args.append:
        try:
            append = open(args.append, "a", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            print(f"{PROG}: error: --append {args.append}: {exc}", file=sys.stderr)
            return 2
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    stop = threading.Event()
    restore = _catch_signals(stop)
    bridge = AlertBridge()
    output = BridgeOutput(sys.stdout, sys.stderr, json_lines=args.json, append=append, runner=runner)
    try:
        try:
            secure_connect(sock, args.connect, curve)
        except (zmq.ZMQError, ConfigError) as exc:
            print(f"{PROG}: error: --connect {args.connect}: {exc}", file=sys.stderr)
            return 2
        for prefix in prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        reason = serve(sock, bridge, output, count=count, idle_timeout=idle, stop=stop)
    finally:
        restore()
        sock.close(linger=0)
        ctx.term()
        if runner is not None:
            left = runner.wait(5.0)
            if left:
                output.say(f"{left} --exec command(s) still running; not waiting for them")
        if append is not None:
            append.close()
    _summary(bridge, output)
    return 1 if reason == "idle" and count is not None else 0


def _summary(bridge: AlertBridge, output: BridgeOutput) -> None:
    st = bridge.stats
    text = f"{st.received} messages, {st.alarms} alarms shown"
    if st.missed:
        text += f", {st.missed} missed in {st.gaps} gaps"
    if st.rejected:
        text += f", {sum(st.rejected.values())} rejected (" + ", ".join(f"{k} {v}" for k, v in st.rejected.items())
        text += ")"
    active = bridge.active_alarms()
    if active:
        text += "; active: " + ", ".join(f"{a['stream']} {a['kind']}" for a in active)
    output.say(text)


def _catch_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set ``stop`` (main thread only); returns a function restoring the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop_on_signals(stop.set)

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    return restore


if __name__ == "__main__":
    sys.exit(main())
