"""The reference bedside bridge for the alert bus: validates, tracks and shows what a monitor publishes.

The receiving logic lives in :class:`AlertBridge` (no sockets, no output) so
that it can be driven and tested message by message; :class:`BridgeOutput`
prints, appends and starts ``--exec`` commands; :func:`serve` (``_serve``) is the socket
loop around them. The message format (and its validation against the JSON
Schema) is :mod:`monitor.protocol`; the ``ecg-alerts`` command line is
:mod:`monitor.cli._alerts`.

Joining (the ZeroMQ guide's clone pattern, the monitor's side is
:class:`monitor.outputs.AlertBus`): the bridge subscribes, then asks the
monitor's snapshot endpoint for the alarms already active
(:meth:`AlertBridge.apply_snapshot`) before it reads the bus; a bus message
whose ``seq`` is not greater than its topic's seq in the snapshot is already
in it and is skipped. Later, a gap on an alarm topic or a restarted monitor
makes the bridge ask again, for that topic or for all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from monitor.errors import FrameError
from monitor.outputs._bus import AlertBus, decode_snapshot
from monitor.protocol import decode_message

__all__ = [
    "PROG",
    "AlertBridge",
    "BridgeEvent",
    "BridgeOutput",
    "BridgeStats",
    "CommandRunner",
    "format_message",
    "local_time",
    "printable",
]

PROG = "ecg-alerts"
"""The name the bridge's remarks on stderr start with."""


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
    snapshots: int = 0
    """Snapshot replies applied."""
    skipped: int = 0
    """Bus messages skipped as already in a snapshot."""
    rejected: Counter[str] = field(default_factory=Counter)


class AlertBridge:
    """Validates bus messages, tracks sequence numbers and keeps the table of active alarms.

    It assumes one publishing monitor (one ``--connect``): a message from
    another monitor instance id means the monitor was restarted, so the
    alarms of the old instance are dropped and sequence tracking starts over.
    :attr:`wanted` holds the topic prefixes a snapshot should be asked for
    (a gap on an alarm topic, a restart); whoever owns the sockets asks and
    empties it.
    """

    SNAPSHOT = AlertBus.SNAPSHOT

    def __init__(self) -> None:
        self.stats = BridgeStats()
        self.monitor: str | None = None
        self.active: dict[str, dict[str, dict[str, Any]]] = {}
        """stream -> alarm_id -> the alarm's latest body."""
        self.wanted: list[str] = []
        self._seq: dict[str, int] = {}
        self._floor: dict[str, int] = {}  # topic -> seq of the snapshot: bus messages up to it are in it
        self._joined: list[str] = []  # prefixes snapshots were taken for: their alarm topics start at seq 0

    @staticmethod
    def alarm_prefixes(prefixes: Sequence[str]) -> list[str]:
        """Those of the subscription ``prefixes`` that take alarm topics: the ones to ask a snapshot for."""
        return [p for p in prefixes if p.startswith("alarm/") or "alarm/".startswith(p)]

    @classmethod
    def snapshot_request(cls, prefixes: Sequence[str]) -> list[bytes]:
        """The frames of a snapshot request for the alarm topics under ``prefixes`` (none: every topic)."""
        return [cls.SNAPSHOT, *(p.encode() for p in prefixes)]

    def want(self, *prefixes: str) -> None:
        self.wanted.extend(p for p in prefixes if p not in self.wanted)

    def active_alarms(self, stream: str | None = None) -> list[dict[str, Any]]:
        """The alarms now active (of one stream, or of all), in the order they became known."""
        tables = [self.active.get(stream, {})] if stream is not None else list(self.active.values())
        return [body for table in tables for body in table.values()]

    def handle(self, parts: Sequence[bytes]) -> BridgeEvent | None:
        """Take one received message; None when there is nothing to show or say about it."""
        try:
            topic, body = decode_message(parts)
        except FrameError as exc:
            self.stats.received += 1
            self.stats.rejected[exc.reason] += 1
            return BridgeEvent(topic=_topic_text(parts), error=exc)
        return self.take(topic, body)

    def take(self, topic: str, body: dict[str, Any]) -> BridgeEvent | None:
        """Take one message already checked (a bus body this process built, handed over in-process); None
        when there is nothing to show or say about it."""
        self.stats.received += 1
        notes: list[str] = []
        dropped: tuple[dict[str, Any], ...] = ()
        restarted = False
        if self.monitor is not None and body["monitor"] != self.monitor:
            restarted = True
            dropped = self._restart(body["monitor"], notes)
        self.monitor = body["monitor"]

        missed = 0
        seq: int = body["seq"]
        floor = self._floor.pop(topic, None)
        if floor is not None and seq <= floor:  # already in the snapshot
            self._floor[topic] = floor
            self.stats.skipped += 1
            return None
        last = self._seq.get(topic)
        if last is None and topic.startswith("alarm/") and any(topic.startswith(p) for p in self._joined):
            last = 0  # a topic the snapshot did not list had no message before it
        if last is not None:
            if seq > last + 1:
                missed = seq - last - 1
                self.stats.missed += missed
                self.stats.gaps += 1
                notes.append(f"missed {missed} message{'s' if missed != 1 else ''} on {topic}")
                if topic.startswith("alarm/"):
                    self.want(topic)  # its alarms may have changed unseen: ask for them again
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

    def _restart(self, monitor: str, notes: list[str]) -> tuple[dict[str, Any], ...]:
        """Forget what the replaced monitor said; returns its alarms that were active."""
        dropped = tuple(self.active_alarms())
        self.stats.restarts += 1
        note = f"monitor restarted ({self.monitor} -> {monitor})"
        if dropped:
            note += f"; {len(dropped)} alarm(s) it had active dropped without an end"
        notes.append(note)
        self.active.clear()
        self._seq.clear()
        self._floor.clear()
        self.want(*self._joined)
        return dropped

    def apply_snapshot(self, parts: Sequence[bytes]) -> list[BridgeEvent]:
        """Take a snapshot reply: its alarms become the active ones of the topics it covers (those not
        known yet are shown, those known but no longer in it are dropped with a note), and each of its
        topics is followed from the seq it names."""
        self.stats.received += 1
        try:
            header, items = decode_snapshot(parts)
        except FrameError as exc:
            self.stats.rejected[exc.reason] += 1
            return [BridgeEvent(topic="snapshot", error=exc)]
        if header["error"] is not None:
            text = f"the monitor refused a snapshot ({header['error']}): {header.get('text', '')}"
            return [BridgeEvent(topic="snapshot", notes=(text,))]
        self.stats.snapshots += 1
        notes: list[str] = []
        dropped: tuple[dict[str, Any], ...] = ()
        restarted = self.monitor is not None and header["monitor"] != self.monitor
        if restarted:
            dropped = self._restart(header["monitor"], notes)
        self.monitor = header["monitor"]
        prefixes: list[str] = header["topics"]
        ids = {body["alarm_id"] for _, body in items}
        gone = [
            b
            for b in self.active_alarms()
            if b["alarm_id"] not in ids and any(f"alarm/{b['stream']}/".startswith(p) for p in prefixes or [""])
        ]
        for b in gone:
            self._track(dict(b, state="end"))
        if gone:
            names = ", ".join(f"{b['stream']} {b['kind']}" for b in gone)
            notes.append(f"{len(gone)} alarm(s) ended while messages were missed: {names}")
            dropped += tuple(gone)
        for topic, seq in header["seq"].items():
            self._seq[topic] = max(seq, self._seq.get(topic, 0))
            self._floor[topic] = seq
        self._joined.extend(p for p in prefixes or [""] if p not in self._joined)
        events: list[BridgeEvent] = []
        for topic, body in items:
            if self._track(body):
                self.stats.alarms += 1
                self.stats.shown += 1
                events.append(BridgeEvent(topic=topic, body=body))
            else:
                self.stats.duplicates += 1
        if notes or dropped:
            events.insert(0, BridgeEvent(topic="snapshot", restarted=restarted, notes=tuple(notes), dropped=dropped))
        return events

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
    return printable(bytes(parts[0])[:80].decode("utf-8", "replace"))


# --- presentation --------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters escaped (a message cannot move the cursor or clear the terminal)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def local_time(t: float) -> str:
    """Unix time ``t`` as local ``YYYY-MM-DD HH:MM:SS`` (the number itself when out of range)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    except (OverflowError, OSError, ValueError):
        return f"{t:.0f}"


def _num(value: float | None, fmt: str) -> str:
    return "--" if value is None else format(value, fmt)


def _segment(body: Mapping[str, Any]) -> str:
    """`` (boot 7, segment b7)`` when the body names the device's index space (a stream with more than one)."""
    if "segment" not in body:
        return ""
    segment = f"segment {body['segment'] or 'first'}"
    return f" ({segment})" if body.get("boot") is None else f" (boot {body['boot']}, {segment})"


def format_message(body: Mapping[str, Any]) -> str:
    """One readable line for a valid message body."""
    when = local_time(body["time"])
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
        line = f"{when}  {body['stream']:<6} beat   {body['label']} at sample {body['sample']}{_segment(body)}"
        if body["rr_prev"] is not None:
            line += f", RR {body['rr_prev']:.3f} s"
    elif kind == "wave":
        lead = f" {body['lead']}" if body.get("lead") else ""
        line = (
            f"{when}  {body['stream']:<6} wave   {len(body['values'])} values at {body['fs']:g} Hz{lead} "
            f"from sample {body['sample']}{_segment(body)}"
        )
    elif kind == "ack":
        line = f"{when}  {body['stream']:<6} ack    {body['alarm_id']} acknowledged by {body['by']}"
    else:
        line = (
            f"{when}  status {body['health'].upper()}, {body['streams_active']}/{body['streams']} streams, "
            f"{body['alarms_active']} alarms active, engine {body['engine']}"
        )
        if body["problems"]:
            line += ": " + "; ".join(body["problems"])
    return printable(line)


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
        print(f"{PROG}: {printable(text)}", file=self.err, flush=True)


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
        print(f"{PROG}: {printable(text)}", file=self.err, flush=True)
