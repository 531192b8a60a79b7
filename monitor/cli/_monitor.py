"""``ecg-monitor``: run the monitor on a replay or on live devices."""

from __future__ import annotations

import argparse
import errno
import functools
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from engine import (
    BACKENDS,
    EXTRA_BACKENDS,
    BatcherConfig,
    BeatClassifier,
    EngineError,
    RemoteClassifier,
    UnclassifiedClassifier,
    default_classifier,
)
from monitor.alarms import load_rhythm_settings
from monitor.app import Monitor, MonitorConfig, parse_source
from monitor.cli._options import (
    OptionParser,
    field_default,
    host_port,
    positive,
    setup_logging,
    stop_on_signals,
)
from monitor.errors import ConfigError, EcgMonitorError
from monitor.evaluation import MatchResult
from monitor.ingest import StreamConfig
from monitor.observe import MetricsServer, attach
from monitor.outputs import LiveView
from monitor.transport import client_from_flags, secure_connect
from replay import ReplayConfig, add_replay_options

if TYPE_CHECKING:
    from monitor.web import Station

__all__ = ["build_parser", "lead_preference", "main", "writable_folder"]


_MAX_LEAD_NAME = 64  # as StreamConfig allows


def lead_preference(text: str) -> tuple[int | str, ...]:
    """An argparse ``type``: ``MLII,II,V5,0`` -> ``("MLII", "II", "V5", 0)``, digits being channel indices."""
    out: list[int | str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise argparse.ArgumentTypeError(
                f"empty lead in {text!r}: give lead names (MLII, II, V5...) and/or channel indices, separated by commas"
            )
        if item.isascii() and item.lstrip("+-").isdigit():
            index = int(item)
            if index < 0:
                raise argparse.ArgumentTypeError(f"a channel index must be >= 0, got {item!r}")
            out.append(index)
        elif len(item) > _MAX_LEAD_NAME:
            raise argparse.ArgumentTypeError(f"a lead name has at most {_MAX_LEAD_NAME} characters, got {item!r}")
        else:
            out.append(item)
    return tuple(out)


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-monitor",
        description="Real-time ECG monitor.",
    )
    p.option(
        "--source",
        env="SOURCE",
        help="replay:100 | replay:100,101 | replay:mitdb | replay:PATH/TO/RECORD | tcp://*:5555 | ipc://PATH",
        default_text="none, required",
    )
    add_replay_options(p)
    p.option(
        "--lead",
        env="LEAD",
        type=lead_preference,
        default=field_default(StreamConfig, "lead"),
        metavar="LEAD[,LEAD...]",
        help="lead(s) used for detection, in order of preference: names (MLII, II, V5...) and/or channel indices; "
        "a stream without any of them uses channel 0",
    )
    p.option("--annotations", env="ANNOTATIONS", help="write DIR/<stream>.mon WFDB annotation files")
    p.option(
        "--view",
        env="VIEW",
        choices=("auto", "live", "plain", "off"),
        default="auto",
        help="live: redraw in place; plain: lines; auto: live on a terminal",
    )
    p.flag("--beats", env="BEATS", help="print a line per beat")
    p.flag("--offline", env="OFFLINE", help="never download records")
    p.option(
        "--latency-budget-ms",
        env="LATENCY_BUDGET_MS",
        type=positive(float, "ms"),
        default=field_default(BatcherConfig, "latency_budget_s") * 1000,
        help="longest wait from a beat being ready to its label: the batcher's deadline",
    )
    p.option("--engine", env="ENGINE", help="use an ecg-engine service at this endpoint instead of a local engine")
    p.option(
        "--backend",
        env="BACKEND",
        choices=("auto", *BACKENDS, *EXTRA_BACKENDS),
        default="auto",
        help="local engine backend; auto: tensorrt, else cuda, else cpu",
    )
    p.option(
        "--threads",
        env="THREADS",
        type=positive(int),
        default=1,
        help="PyTorch CPU threads of the local classifier; more than one competes with ingest on small machines",
    )
    p.option(
        "--model",
        env="MODEL",
        help="classifier weights file, or 'none' to leave every beat unclassified",
        default_text="the shipped CNN",
    )
    p.option(
        "--alerts",
        env="ALERTS",
        help="publish alarms, beats, vitals and status on this ZeroMQ XPUB endpoint, e.g. tcp://127.0.0.1:5570",
    )
    p.flag(
        "--wave",
        env="WAVE",
        help="with --alerts: also publish each stream's ECG strip (monitored lead, 125 Hz, 0.25 s chunks) on "
        "wave/<stream>/ for central stations and bridges to draw",
    )
    p.option(
        "--alarm-log",
        env="ALARM_LOG",
        help="SQLite alarm log file, or 'off'",
        default_text="alarms.sqlite in the user data folder",
    )
    p.option(
        "--rhythm-config",
        env="RHYTHM_CONFIG",
        help="TOML file of alarm thresholds: defaults and per-stream overrides, as in monitor/alarms/rhythm.toml",
        default_text="the built-in thresholds",
    )
    p.option(
        "--keys",
        env="KEYS",
        help="CURVE keys folder (ecg-keys init): only authorized devices and bridges may connect; "
        "also holds this monitor's key for --engine",
    )
    p.option("--key-name", env="KEY_NAME", help="this monitor's client key name for --engine, with --keys")
    p.option(
        "--silence-s",
        env="SILENCE_S",
        type=positive(float, "s"),
        default=field_default(MonitorConfig, "silence_s"),
        help="raise 'signal lost' when a live stream sends nothing for this long",
    )
    p.option(
        "--stream-timeout-s",
        env="STREAM_TIMEOUT_S",
        type=positive(float, "s"),
        default=field_default(MonitorConfig, "stream_timeout_s"),
        help="a live stream sending nothing this long is ended and its alarms closed (at least --silence-s)",
    )
    p.option(
        "--metrics",
        env="METRICS",
        type=host_port,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics; PORT alone listens on 127.0.0.1",
    )
    p.option(
        "--web",
        env="WEB",
        type=host_port,
        metavar="HOST:PORT",
        help="serve the central station page (every bed's strip, heart rate and alarms) at http://HOST:PORT/; "
        "the page gets this monitor's messages in-process (strips go on the bus too only with --wave); a "
        "loopback --alerts bus is opened when none is given; beyond loopback needs --web-token-file",
    )
    p.option("--web-token-file", env="WEB_TOKEN_FILE", help="with --web: file holding the station token (mode 600)")
    p.flag(
        "--metrics-per-stream",
        env="METRICS_PER_STREAM",
        help="add per-stream metric series (leave off with many streams)",
    )
    p.logging_option()
    return p


def _summary(monitor: Monitor, wall: float) -> str:
    lines = [s.line() for s in monitor.summaries]
    matches = [s.match for s in monitor.summaries if s.match is not None]
    duration = sum(s.duration_s for s in monitor.summaries)
    total = f"total: {len(monitor.summaries)} streams, {monitor.labels.labeled} beats, "
    total += f"{duration / 3600:.2f} h of ECG in {wall:.1f} s"
    if wall > 0:
        total += f" ({duration / wall:.0f}x real time)"
    if matches:
        m = sum(matches, MatchResult(0, 0, 0))
        total += f"; {m.describe()}" + (f" F1 {m.f1:.2f}" if m.tp + m.fn and m.tp + m.fp else "")
    lines.append(total)
    st = monitor.batcher.stats
    sizes = sum(n * k for n, k in st.batch_sizes.items()) / max(st.batches, 1)
    lines.append(
        f"engine: {monitor.engine.name}, {st.batches} batches (mean size {sizes:.0f}), "
        f"{st.late} beats late, {sum(st.shed.values())} shed"
    )
    return "\n".join(lines)


def _alarm_log_path(value: str | None) -> Path | None:
    if value is not None and value.strip().lower() == "off":
        return None
    if value:
        return Path(value)
    from monitor.outputs import default_path

    return default_path()


def writable_folder(flag: str, text: str | Path) -> Path:
    """The folder ``text`` of an output flag, created and checked writable now, not when the first file is due."""
    path = Path(text)
    if not str(text).strip():
        raise ConfigError(f"{flag}: the folder name is empty")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


_BIND_PROBLEMS = {
    errno.EADDRINUSE: "address in use (another program listens there)",
    errno.EADDRNOTAVAIL: "this machine has no such address",
    errno.ENODEV: "no such host or interface to listen on",
}


def _unbound(monitor: Monitor) -> str | None:
    """The flag and endpoint ``run()`` failed to bind (None once every socket is bound)."""
    if monitor.bound_endpoint is None:
        return f"--source {monitor.endpoint}"
    if monitor.config.alerts is not None and monitor.alerts_endpoint is None:
        return f"--alerts {monitor.config.alerts}"
    return None


def _run_error(monitor: Monitor, exc: Exception) -> str:
    """A failure of ``run()``, naming the flag whose endpoint could not be bound."""
    where = _unbound(monitor)
    if isinstance(exc, zmq.ZMQError):
        problem = _BIND_PROBLEMS.get(exc.errno or 0, f"cannot bind ({exc.strerror.split(' (addr=')[0]})")
        return f"{where}: {problem}" if where else f"ZeroMQ: {exc}"
    text = str(exc)
    return f"{where}: {text}" if where and not text.startswith(where.split()[0]) else text


def _start_station(args: argparse.Namespace, monitor: Monitor) -> Station:
    """The ``--web`` page, bound now: it gets the monitor's bus in-process (every message as published),
    acknowledgements go to the monitor (its bus, its alarm log), review strips come from its alarm log."""
    from monitor.web import Station, read_token  # aiohttp is imported only with --web

    host, port = args.web
    token = read_token(args.web_token_file)
    alarm_log = _alarm_log_path(args.alarm_log)
    station = Station([], host, port, token=token, alarm_log=alarm_log, on_ack=monitor.acks.add).start()
    monitor.bus_taps.append(station.local_feed())
    monitor.second_lead_for = station.viewing  # the bed view's second lead
    return station


def _announce_when_bound(monitor: Monitor, finished: threading.Event) -> threading.Thread:
    """Say where the monitor listens once its sockets are bound (never before, never when binding fails)."""

    def announce() -> None:
        while not monitor.ready.wait(0.05):
            if finished.is_set():
                return
        if monitor.source.endpoint:
            print(f"ecg-monitor: listening on {monitor.bound_endpoint}", file=sys.stderr, flush=True)
        if monitor.alerts_endpoint:
            print(f"ecg-monitor: alerts published on {monitor.alerts_endpoint}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=announce, name="ecg-monitor-announce", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--cluster" or a.startswith("--cluster=") for a in given):  # cluster mode: one of its roles
        try:
            from monitor.cluster import cluster_main  # needs the cluster extra (nats-py)
        except ImportError as exc:
            print(
                f"ecg-monitor: error: --cluster needs nats-py: pip install 'ecg-monitor[cluster]' ({exc})",
                file=sys.stderr,
            )
            return 2
        return cluster_main(given)
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not (args.source or "").strip():
        parser.error("--source is required (or set ECG_MONITOR_SOURCE), e.g. --source replay:100")
    if args.model is not None and not args.model.strip():
        parser.error("--model is empty: give a weights file, or 'none' to leave beats unclassified")
    if args.key_name and not args.keys:
        parser.error("--key-name needs --keys DIR (the CURVE keys folder holding that key)")
    if args.web_token_file and args.web is None:
        parser.error("--web-token-file needs --web HOST:PORT")
    if args.web is not None:  # the page's acknowledgements are published on the bus
        args.alerts = args.alerts or "tcp://127.0.0.1:*"
    if args.wave and not args.alerts:
        parser.error("--wave needs --alerts ENDPOINT (the strips are published on the alert bus)")
    if args.stream_timeout_s < args.silence_s:
        parser.error(
            f"--stream-timeout-s ({args.stream_timeout_s:g} s) must be at least --silence-s ({args.silence_s:g} s): "
            "a stream is ended only after it has been reported silent"
        )
    try:
        source = parse_source(args.source, args.data_dir, offline=args.offline or None)
        source.check_lead(args.lead)
        config = MonitorConfig(
            stream=StreamConfig(lead=args.lead, second_lead=args.web is not None),
            replay=ReplayConfig(chunk_s=args.chunk_ms / 1000.0, speed=args.speed, loop=args.loop),
            annotations=writable_folder("--annotations", args.annotations) if args.annotations is not None else None,
            batcher=BatcherConfig(latency_budget_s=args.latency_budget_ms / 1000.0),
            rhythm=load_rhythm_settings(args.rhythm_config),
            alerts=args.alerts or None,
            wave=args.wave,
            alarm_log=_alarm_log_path(args.alarm_log),
            keys=Path(args.keys) if args.keys else None,
            silence_s=args.silence_s,
            stream_timeout_s=args.stream_timeout_s,
        )
    except (EcgMonitorError, ValueError) as exc:
        print(f"ecg-monitor: error: {exc}", file=sys.stderr)
        return 2
    view = None
    if args.view != "off":
        interactive = {"auto": None, "live": True, "plain": False}[args.view]
        view = LiveView(interactive=interactive, beats=args.beats, interval=1.0 if interactive is not False else 10.0)
    classifier: BeatClassifier
    factory: Callable[[], BeatClassifier] | None = None
    try:
        if args.engine:
            curve = client_from_flags(args.keys, args.key_name, "this monitor's --engine")
            connect = functools.partial(secure_connect, config=curve)
            classifier = RemoteClassifier(args.engine, connect=connect)
            endpoint = args.engine

            def factory() -> BeatClassifier:  # reconnect after a failure
                return RemoteClassifier(endpoint, connect=connect)

        elif args.model == "none":
            classifier = UnclassifiedClassifier()
        else:
            classifier = default_classifier(args.model, args.backend, threads=args.threads)

            def factory() -> BeatClassifier:  # rebuild after a failure
                return default_classifier(args.model, args.backend, threads=args.threads)

    except (OSError, ValueError, EcgMonitorError, EngineError) as exc:
        print(f"ecg-monitor: error: classifier: {exc}", file=sys.stderr)
        return 2
    except zmq.ZMQError as exc:
        print(f"ecg-monitor: error: --engine {args.engine}: {exc.strerror.split(' (addr=')[0]}", file=sys.stderr)
        return 2
    try:
        monitor = Monitor(source, config, view=view, classifier=classifier, engine_factory=factory)
    except EcgMonitorError as exc:
        print(f"ecg-monitor: error: {exc}", file=sys.stderr)
        return 2
    metrics = None
    if args.metrics is not None:
        host, port = args.metrics
        try:
            registry = attach(monitor, per_stream=args.metrics_per_stream)
            metrics = MetricsServer(registry, port=port, addr=host)
        except OSError as exc:
            print(f"ecg-monitor: error: --metrics {host}:{port}: {exc}", file=sys.stderr)
            return 2
        print(f"ecg-monitor: metrics on {metrics.url}", file=sys.stderr)

    station = None
    if args.web is not None:
        try:
            station = _start_station(args, monitor)
        except (ConfigError, ValueError, OSError) as exc:
            print(f"ecg-monitor: error: --web: {exc}", file=sys.stderr)
            if metrics is not None:
                metrics.close()
            return 2
        print(f"ecg-monitor: central station on {station.url}", file=sys.stderr, flush=True)

    stop_on_signals(monitor.stop)
    finished = threading.Event()
    announcer = _announce_when_bound(monitor, finished)
    t0 = time.monotonic()
    try:
        code = monitor.run()
    except (EcgMonitorError, zmq.ZMQError) as exc:
        print(f"ecg-monitor: error: {_run_error(monitor, exc)}", file=sys.stderr)
        return 2 if not monitor.ready.is_set() else 1
    finally:
        finished.set()
        announcer.join()
        if station is not None:
            station.close()
        if metrics is not None:
            metrics.close()
        close = getattr(monitor.engine.classifier, "close", None)
        if callable(close):
            close()
    wall = time.monotonic() - t0
    if source.is_replay:
        print(_summary(monitor, wall), flush=True)
    if monitor.replayer is not None and monitor.replayer.error is not None:
        err = monitor.replayer.error
        print(f"ecg-monitor: error: replay failed: {err}", file=sys.stderr)
    if config.annotations:
        print(f"annotations written to {config.annotations}/", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
