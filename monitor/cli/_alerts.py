"""``ecg-alerts``: show a monitor's alarms live, and the alarm history.

``ecg-alerts --connect ENDPOINT`` subscribes to a monitor's alert bus (a ZeroMQ
XPUB socket, wire format in ``monitor/protocol/schema/alert-bus-v1.schema.json``),
asks the monitor's snapshot endpoint (``--snapshot``, by default beside the bus)
for the alarms already active, and prints every alarm as it happens; it can
also run a command or append a JSON line per alarm. ``ecg-alerts history`` prints the alarm log a monitor keeps.
The bridge itself is :class:`monitor.outputs.AlertBridge`.

``ecg-alerts --cluster URL [--durable NAME] [--alarm-log FILE]`` reads a cluster's alarm transitions from the
replicated ``ECG_ALARMS`` stream instead, through the durable consumer ``NAME`` that the servers keep: a
reader that was away gets what it missed, in order. Each transition is checked like a bus alarm, written to
the alarm log (the embedded monitor's schema, run ``cluster-NAME``; ``ecg-alerts history`` reads it) and
acknowledged only once committed there: a transition delivered again (a reader stopped between the two) is
stored once and not shown twice. This needs the cluster extra (nats-py).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

import zmq

from monitor.cli._options import OptionParser, setup_logging, stop_on_signals
from monitor.errors import ConfigError, FrameError
from monitor.outputs import (
    PROG,
    AlarmLog,
    AlarmLogError,
    AlertBridge,
    AlertBus,
    BridgeEvent,
    BridgeOutput,
    BridgeStats,
    CommandRunner,
    check_body,
    serve,
    snapshot_dealer,
)
from monitor.protocol import TOPICS, is_stream_id, subscriptions
from monitor.transport import CurveConfig, client_from_flags, secure_connect

if TYPE_CHECKING:
    from monitor.cluster import AlarmReader

__all__ = ["build_history_parser", "build_parser", "history_main", "main", "parse_time"]

from monitor.cli._history import build_history_parser, history_main, parse_time


class _Parser(OptionParser):
    """Errors start with ``ecg-alerts: error:``, for the history subcommand too."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (alarms), got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _streams(text: str) -> list[str]:
    ids = _split(text)
    for s in ids:
        if not is_stream_id(s):
            raise argparse.ArgumentTypeError(f"{s!r}: not a stream id (letters, digits, '.', '_', '-'; at most 64)")
    return ids


def _topics(text: str) -> list[str]:
    names = _split(text)
    try:
        prefixes = subscriptions(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not prefixes:
        raise argparse.ArgumentTypeError("no topic given")
    return names


def _command(text: str) -> list[str]:
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not argv:
        raise argparse.ArgumentTypeError("empty command")
    return argv


class _Extend(argparse.Action):
    """Each use adds its comma-separated values; the command line replaces the environment's."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, self.dest, None)
        kept = [] if current is None or current is self.default else list(current)
        setattr(namespace, self.dest, kept + list(values or []))


def build_parser() -> OptionParser:
    p = _Parser(
        prog=PROG,
        description=(
            "Show a monitor's alarms live (and optionally vitals, beats, status); run a command or append a "
            f"JSON line per alarm. '{PROG} history --help' for the alarm log."
        ),
    )
    p.option(
        "--connect",
        env="CONNECT",
        metavar="ENDPOINT",
        help="the monitor's alert bus endpoint, e.g. tcp://127.0.0.1:5570; required",
    )
    p.option(
        "--cluster",
        env="CLUSTER",
        metavar="URL",
        help="read a cluster's alarms instead (NATS URLs, comma-separated): the ECG_ALARMS stream, durably",
    )
    p.option(
        "--durable",
        env="DURABLE",
        metavar="NAME",
        default="ecg-alerts",
        help="with --cluster: the durable consumer (kept by the servers: what this reader missed comes when it is "
        "back)",
    )
    p.option(
        "--alarm-log",
        metavar="FILE",
        help="with --cluster: write every transition to this alarm log (ecg-alerts history reads it), "
        "acknowledged once committed",
    )
    p.option(
        "--snapshot",
        env="SNAPSHOT",
        metavar="ENDPOINT",
        help="the monitor's snapshot endpoint, asked for the alarms already active when this bridge joins "
        "(status messages name it); default: beside --connect (tcp: the next port; ipc, inproc: "
        "ENDPOINT.snapshot); 'off': do not ask",
    )
    p.option(
        "--keys",
        env="KEYS",
        metavar="DIR",
        help="CURVE keys folder holding the monitor's server.key and this bridge's key",
    )
    p.option(
        "--key-name",
        env="KEY_NAME",
        metavar="NAME",
        help="this bridge's client key name, made with: ecg-keys add-client DIR NAME",
    )
    p.option(
        "--stream",
        env="STREAM",
        action=_Extend,
        type=_streams,
        metavar="ID",
        help="only this stream; repeat or comma-separate for several, leave out for all",
    )
    p.option("--topics", env="TOPICS", type=_topics, default="alarm", help=f"comma-separated, of: {','.join(TOPICS)}")
    p.option(
        "--exec",
        env="EXEC",
        dest="exec_cmd",
        type=_command,
        metavar="CMD",
        help="run CMD (no shell) in the background for each alarm shown, with ECG_ALARM_STREAM, _KIND, _PRIORITY, "
        "_STATE, _TEXT, _ID and _JSON in its environment",
    )
    p.option("--append", env="APPEND", metavar="FILE", help="append a JSON line per alarm to FILE")
    p.flag("--json", env="JSON", help="print message bodies as JSON")
    p.option(
        "--count",
        env="COUNT",
        type=_count,
        metavar="N",
        help="exit after N alarms shown (exit status 1 if --timeout ends the wait first)",
    )
    p.option("--timeout", env="TIMEOUT", type=_seconds, metavar="S", help="exit after S seconds without a message")
    p.logging_option()
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["history"]:
        return history_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.cluster:
        return _cluster_main(parser, args)
    if args.alarm_log:
        parser.error("--alarm-log is for --cluster (a monitor writes its own alarm log)")
    if not args.connect:
        parser.error("--connect is required (or set ECG_MONITOR_CONNECT), e.g. --connect tcp://127.0.0.1:5570")
    try:
        curve = client_from_flags(args.keys, args.key_name, "this bridge's")
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    prefixes = subscriptions(args.topics, args.stream or [])
    runner = CommandRunner(args.exec_cmd, sys.stderr) if args.exec_cmd else None

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
    bridge.want(*AlertBridge.alarm_prefixes(prefixes))
    output = BridgeOutput(sys.stdout, sys.stderr, json_lines=args.json, append=append, runner=runner)
    try:
        try:
            secure_connect(sock, args.connect, curve)
        except (zmq.ZMQError, ConfigError) as exc:
            print(f"{PROG}: error: --connect {args.connect}: {exc}", file=sys.stderr)
            return 2
        for prefix in prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        snapshot_endpoint: str = args.snapshot or ""
        try:
            snapshot_endpoint = snapshot_endpoint or AlertBus.default_snapshot_endpoint(args.connect)
            asker = None if snapshot_endpoint == "off" else _snapshot_socket(ctx, snapshot_endpoint, curve)
        except (zmq.ZMQError, ConfigError) as exc:
            print(f"{PROG}: error: --snapshot {snapshot_endpoint or args.connect}: {exc}", file=sys.stderr)
            return 2
        reason = serve(sock, bridge, output, count=args.count, idle_timeout=args.timeout, stop=stop, snapshot=asker)
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
    return 1 if reason == "idle" and args.count is not None else 0


def _cluster_main(parser: OptionParser, args: argparse.Namespace) -> int:
    bus_only = ((args.connect, "--connect"), (args.snapshot, "--snapshot"), (args.keys, "--keys"))
    for given, name in (*bus_only, (args.key_name, "--key-name")):
        if given:
            parser.error(f"{name} is for a monitor's alert bus, not --cluster")
    if set(args.topics) != {"alarm"}:
        parser.error("--cluster carries alarms only (--topics alarm)")
    try:  # the cluster extra
        import nats.errors

        from monitor.cluster import AlarmReader
    except ImportError as exc:
        print(f"{PROG}: error: --cluster needs nats-py: pip install 'ecg-monitor[cluster]' ({exc})", file=sys.stderr)
        return 2
    log: AlarmLog | None = None
    append: IO[str] | None = None
    try:
        if args.alarm_log:
            log = AlarmLog(args.alarm_log, run_id=f"cluster-{args.durable}")
        if args.append:
            append = open(args.append, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except (ConfigError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        if log is not None:
            log.close()
        return 2
    runner = CommandRunner(args.exec_cmd, sys.stderr) if args.exec_cmd else None
    output = BridgeOutput(sys.stdout, sys.stderr, json_lines=args.json, append=append, runner=runner)
    follower = _ClusterFollower(output, log, set(args.stream or []))
    stop = threading.Event()
    restore = _catch_signals(stop)
    servers = _split(args.cluster)
    try:
        reason = asyncio.run(follower.run(AlarmReader, servers, args.durable, args.count, args.timeout, stop))
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        print(f"{PROG}: error: --cluster {args.cluster}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        restore()
        if log is not None:
            log.close()
        if runner is not None:
            runner.wait(5.0)
        if append is not None:
            append.close()
    st = follower.stats
    text = f"{st.received} transitions, {st.alarms} alarms shown"
    if st.duplicates:
        text += f", {st.duplicates} delivered again (logged before)"
    if st.rejected:
        text += f", {sum(st.rejected.values())} rejected"
    output.say(text)
    return 1 if reason == "idle" and args.count is not None else 0


class _ClusterFollower:
    """Reads ``ECG_ALARMS`` through a durable consumer: check, log (once), show, then acknowledge."""

    def __init__(self, output: BridgeOutput, log: AlarmLog | None, streams: set[str]) -> None:
        self.output = output
        self.log = log
        self.streams = streams
        self.stats = BridgeStats()

    async def run(
        self,
        reader_type: type[AlarmReader],
        servers: list[str],
        durable: str,
        count: int | None,
        idle: float | None,
        stop: threading.Event,
    ) -> str:
        import nats

        from monitor.cluster import bus_body

        nc = await nats.connect(servers, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
        reader = reader_type(nc.jetstream(timeout=5.0), durable)
        last = time.monotonic()
        try:
            while not stop.is_set():
                if count is not None and self.stats.alarms >= count:
                    return "count"
                wait = 0.5 if idle is None else min(0.5, last + idle - time.monotonic())
                if wait <= 0:
                    return "idle"
                deliveries = await reader.fetch(timeout=max(wait, 0.05))
                if deliveries:
                    last = time.monotonic()
                for i, delivery in enumerate(deliveries):
                    done = count is not None and self.stats.alarms >= count
                    handled = not done and self._handle(bus_body(delivery) if delivery.record is not None else None)
                    if not handled:
                        for rest in deliveries[i:]:  # delivered again, in order, to whoever reads next
                            await rest.nak()
                        if not done:  # the log failed: give it a moment
                            await asyncio.sleep(1.0)
                        break
                    await delivery.ack()
                await nc.flush()
            return "stopped"
        finally:
            await nc.close()

    def _handle(self, body: dict[str, Any] | None) -> bool:
        """Check, log and show one delivered transition (None: not a JSON object); False when it is to come
        again (the log could not take it)."""
        self.stats.received += 1
        if body is None:
            self.output.emit(BridgeEvent("ECG_ALARMS", error=FrameError("json", "not a JSON object")))
            self.stats.rejected["json"] += 1
            return True
        topic = f"alarm/{body.get('stream')}/"
        try:
            check_body(body)
        except FrameError as exc:
            self.output.emit(BridgeEvent(topic, error=exc))
            self.stats.rejected[exc.reason] += 1
            return True
        if self.streams and body["stream"] not in self.streams:
            return True
        if self.log is not None:
            repeated = self.log.repeated
            try:
                self.log.record(body, once=True)
            except AlarmLogError as exc:
                self.output.say(f"{exc}; the transition will come again")
                return False
            if self.log.repeated > repeated:
                self.stats.duplicates += 1
                return True
        self.stats.alarms += 1
        self.output.emit(BridgeEvent(topic, body=body))
        return True


def _snapshot_socket(
    ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, curve: CurveConfig | None
) -> Callable[[], zmq.Socket[bytes]]:
    """A function opening a DEALER connected to the snapshot endpoint (checked now: a bad one is an error)."""
    snapshot_dealer(ctx, endpoint, curve).close(linger=0)
    return lambda: snapshot_dealer(ctx, endpoint, curve)


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
