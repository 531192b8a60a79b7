"""``ecg-monitor``: run the monitor on a replay or on live devices."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import BeatClassifier, UnclassifiedClassifier, default_classifier
from engine._batcher import BatcherConfig
from engine._service import RemoteClassifier
from monitor.alarms import load_rhythm_settings
from monitor.app import Monitor, MonitorConfig, parse_source
from monitor.cli._options import EnvHelpFormatter, env_default, env_flag, setup_logging, stop_on_signals
from monitor.errors import EcgMonitorError
from monitor.evaluation import MatchResult
from monitor.ingest import StreamConfig
from monitor.observe import MetricsServer, attach, parse_address
from monitor.outputs import LiveView
from monitor.transport import client_from_flags
from replay._publisher import ReplayConfig, parse_speed

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ecg-monitor",
        description="Real-time ECG monitor. Every flag falls back to an ECG_MONITOR_<FLAG> environment variable.",
        formatter_class=EnvHelpFormatter,
    )
    p.add_argument(
        "--source",
        default=env_default("SOURCE"),
        help="replay:100 | replay:100,101 | replay:mitdb | replay:PATH/TO/RECORD | tcp://*:5555 | ipc://PATH",
    )
    p.add_argument("--data-dir", default=env_default("DATA"), help="folder of WFDB records (ECG_MONITOR_DATA)")
    p.add_argument("--speed", default=env_default("SPEED", "1"), help="replay speed: multiple of real time, or 'max'")
    p.add_argument("--chunk-ms", type=float, default=float(env_default("CHUNK_MS", 100)), help="replay chunk length")
    p.add_argument("--loop", action="store_true", default=env_flag("LOOP"), help="replay records in a loop")
    p.add_argument("--lead", type=int, default=int(env_default("LEAD", 0)), help="channel used for detection")
    p.add_argument("--annotations", default=env_default("ANNOTATIONS"), help="write DIR/<stream>.mon WFDB files")
    p.add_argument(
        "--view",
        choices=("auto", "live", "plain", "off"),
        default=env_default("VIEW", "auto"),
        help="live: redraw in place; plain: lines; auto: live on a terminal",
    )
    p.add_argument("--beats", action="store_true", default=env_flag("BEATS"), help="print a line per beat")
    p.add_argument("--offline", action="store_true", default=env_flag("OFFLINE"), help="never download records")
    p.add_argument(
        "--latency-budget-ms",
        type=float,
        default=float(env_default("LATENCY_BUDGET_MS", 50)),
        help="longest wait from a beat being ready to its label (the batcher's deadline)",
    )
    p.add_argument("--engine", default=env_default("ENGINE"), help="use an ecg-engine service at this endpoint")
    p.add_argument(
        "--backend",
        default=env_default("BACKEND", "cpu"),
        help="auto | cpu | cuda | compiled | tensorrt (local engine)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(env_default("THREADS", 1)),
        help="PyTorch CPU threads of the local classifier (more than one competes with ingest on small machines)",
    )
    p.add_argument(
        "--model", default=env_default("MODEL"), help="classifier weights file, or 'none' (default: the shipped CNN)"
    )
    p.add_argument(
        "--alerts",
        default=env_default("ALERTS"),
        help="publish alarms, beats, vitals and status on this endpoint (ZeroMQ XPUB), e.g. tcp://127.0.0.1:5570",
    )
    p.add_argument(
        "--alarm-log",
        default=env_default("ALARM_LOG"),
        help="SQLite alarm log file, or 'off' (default: alarms.sqlite in the user data folder)",
    )
    p.add_argument(
        "--rhythm-config",
        default=env_default("RHYTHM_CONFIG"),
        help="TOML file of alarm thresholds (defaults and per-stream overrides; see monitor/alarms/rhythm.toml)",
    )
    p.add_argument(
        "--keys",
        default=env_default("KEYS"),
        help="CURVE keys folder (ecg-keys init): only authorized devices and bridges may connect; "
        "also holds this monitor's key for --engine",
    )
    p.add_argument(
        "--key-name", default=env_default("KEY_NAME"), help="this monitor's client key name for --engine (with --keys)"
    )
    p.add_argument(
        "--silence-s",
        type=float,
        default=float(env_default("SILENCE_S", 5.0)),
        help="raise 'signal lost' when a live stream sends nothing for this long",
    )
    p.add_argument(
        "--metrics",
        default=env_default("METRICS"),
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (PORT alone: 127.0.0.1)",
    )
    p.add_argument(
        "--metrics-per-stream",
        action="store_true",
        default=env_flag("METRICS_PER_STREAM"),
        help="add per-stream metric series (leave off with many streams)",
    )
    p.add_argument("--log-level", default=env_default("LOG_LEVEL", "warning"), help="logging level")
    return p


def _summary(monitor: Monitor, wall: float) -> str:
    lines = [s.line() for s in monitor.summaries]
    matches = [s.match for s in monitor.summaries if s.match is not None]
    duration = sum(s.duration_s for s in monitor.summaries)
    total = f"total: {len(monitor.summaries)} streams, {monitor.labeled} beats, "
    total += f"{duration / 3600:.2f} h of ECG in {wall:.1f} s"
    if wall > 0:
        total += f" ({duration / wall:.0f}x real time)"
    if matches:
        m = sum(matches, MatchResult(0, 0, 0))
        total += f"; TP {m.tp} FP {m.fp} FN {m.fn}, Se {m.se:.2f} +P {m.ppv:.2f} F1 {m.f1:.2f}"
    lines.append(total)
    st = monitor.batcher.stats
    sizes = sum(n * k for n, k in st.batch_sizes.items()) / max(st.batches, 1)
    lines.append(
        f"engine: {monitor.classifier.name}, {st.batches} batches (mean size {sizes:.0f}), "
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.source:
        parser.error("--source is required (or set ECG_MONITOR_SOURCE), e.g. --source replay:100")
    try:
        speed = parse_speed(args.speed)
        source = parse_source(args.source, args.data_dir, offline=args.offline or None)
        config = MonitorConfig(
            stream=StreamConfig(lead=args.lead),
            replay=ReplayConfig(chunk_s=args.chunk_ms / 1000.0, speed=speed, loop=args.loop),
            annotations=Path(args.annotations) if args.annotations else None,
            batcher=BatcherConfig(latency_budget_s=args.latency_budget_ms / 1000.0),
            rhythm=load_rhythm_settings(args.rhythm_config),
            alerts=args.alerts or None,
            alarm_log=_alarm_log_path(args.alarm_log),
            keys=Path(args.keys) if args.keys else None,
            silence_s=args.silence_s,
        )
        metrics_addr = parse_address(args.metrics) if args.metrics else None
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
            classifier = RemoteClassifier(args.engine, curve=curve)
            endpoint = args.engine

            def factory() -> BeatClassifier:  # reconnect after a failure
                return RemoteClassifier(endpoint, curve=curve)

        elif args.model == "none":
            classifier = UnclassifiedClassifier()
        else:
            classifier = default_classifier(args.model, args.backend, threads=max(1, args.threads))

            def factory() -> BeatClassifier:  # rebuild after a failure
                return default_classifier(args.model, args.backend, threads=max(1, args.threads))

    except (OSError, ValueError, EcgMonitorError) as exc:
        print(f"ecg-monitor: error: classifier: {exc}", file=sys.stderr)
        return 2
    monitor = Monitor(source, config, view=view, classifier=classifier, engine_factory=factory)
    metrics = None
    if metrics_addr is not None:
        try:
            registry = attach(monitor, monitor.latency, per_stream=args.metrics_per_stream)
            metrics = MetricsServer(registry, port=metrics_addr[1], addr=metrics_addr[0])
        except OSError as exc:
            print(f"ecg-monitor: error: --metrics {args.metrics}: {exc}", file=sys.stderr)
            return 2
        print(f"ecg-monitor: metrics on {metrics.url}", file=sys.stderr)

    stop_on_signals(monitor.stop)
    if source.endpoint:
        print(f"ecg-monitor: listening on {source.endpoint}", file=sys.stderr)
    if config.alerts:
        print(f"ecg-monitor: alerts published on {config.alerts}", file=sys.stderr)
    t0 = time.monotonic()
    try:
        code = monitor.run()
    except EcgMonitorError as exc:
        print(f"ecg-monitor: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if metrics is not None:
            metrics.close()
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
