"""``ecg-monitor --cluster URL --role gateway|worker|alarms``: one role of cluster mode.

- ``gateway``: bind ``--ingest`` (devices push the wire format there, as to the embedded monitor) and publish
  accepted frames to the cluster.
- ``worker``: analyse a fair share of the partitions (start as many as wanted, on any machine: they share).
- ``alarms``: print every alarm transition of ``ECG_ALARMS`` as a JSON line, through the durable consumer
  ``--durable`` (a reader that was away gets what it missed).

A gateway also runs the "monitoring interrupted" watchdog (:mod:`monitor.cluster._watchdog`; ``--watchdog-s``,
0: off); the ``alarms`` role runs one when ``--watchdog-s`` is given. Several may run at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import nats

from engine import BeatClassifier, FallbackClassifier, RemoteClassifier, default_classifier
from monitor.app import MonitorConfig
from monitor.cluster._alarms import AlarmReader
from monitor.cluster._gateway import Gateway
from monitor.cluster._layout import ClusterLayout, ensure_layout
from monitor.cluster._watchdog import Watchdog, WatchdogSettings
from monitor.cluster._worker import Worker, WorkerSettings
from monitor.errors import EcgMonitorError

__all__ = ["build_cluster_parser", "cluster_main"]


def build_cluster_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecg-monitor --cluster", description="ECG monitor, cluster mode (NATS JetStream).")
    p.add_argument("--cluster", required=True, help="NATS server URL(s), comma-separated (nats://host:4222,...)")
    p.add_argument("--role", required=True, choices=("gateway", "worker", "alarms"))
    p.add_argument("--ingest", default="tcp://*:5555", help="gateway: ZeroMQ PULL endpoint devices push to")
    p.add_argument("--keys", type=Path, default=None, help="gateway: CURVE keys folder (ecg-keys)")
    p.add_argument("--partitions", type=int, default=8, help="partitions of the frame stream (same on every role)")
    p.add_argument("--replicas", type=int, default=3, help="JetStream replicas of streams and buckets (1 or 3)")
    p.add_argument("--frames-in-memory", action="store_true", help="keep frames in memory (alarms stay on disk)")
    p.add_argument(
        "--lease-s", type=float, default=3.0, help="worker: a partition's owner silent this long is replaced"
    )
    p.add_argument("--window-s", type=float, default=45.0, help="worker: replay window a new owner rebuilds from")
    p.add_argument("--silence-s", type=float, default=5.0, help="worker: no data this long raises 'signal lost'")
    p.add_argument("--model", default="none", help="worker: classifier weights, 'default' (shipped), or 'none'")
    p.add_argument(
        "--engine",
        default=None,
        help="worker: label beats on this ecg-engine service (one GPU for many workers); the local CPU model "
        "(--model, the shipped one by default) labels every batch the service cannot",
    )
    p.add_argument("--window", type=int, default=2000, help="gateway: frames in flight at most (back-pressure beyond)")
    p.add_argument("--stats-s", type=float, default=0.0, help="worker: publish measurement messages every N s (0: off)")
    p.add_argument("--name", default=None, help="worker: its id (default host-pid-random)")
    p.add_argument("--durable", default="ecg-alerts", help="alarms: durable consumer name")
    p.add_argument(
        "--watchdog-s",
        type=float,
        default=None,
        help="gateway, alarms: a sending bed not analysed this long raises 'monitoring interrupted' "
        "(default: 10 on a gateway, off on alarms; 0: off); --lease-s is the workers'",
    )
    p.add_argument(
        "--recent-s", type=float, default=5.0, help="watchdog: a bed whose last frame is older is not sending"
    )
    p.add_argument("--log-level", default="INFO")
    return p


def _layout(args: argparse.Namespace) -> ClusterLayout:
    return ClusterLayout(partitions=args.partitions, replicas=args.replicas, frames_in_memory=args.frames_in_memory)


async def _alarms(servers: list[str], args: argparse.Namespace, stop: asyncio.Event) -> None:
    nc = await nats.connect(servers, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
    js = nc.jetstream(timeout=5.0)
    await ensure_layout(js, _layout(args))
    reader = AlarmReader(js, args.durable)
    try:
        while not stop.is_set():
            for record in await reader.read(timeout=0.5):
                print(json.dumps(record, sort_keys=True), flush=True)
    finally:
        await nc.close()


async def _main(args: argparse.Namespace) -> None:
    servers = [u.strip() for u in args.cluster.split(",") if u.strip()]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    budget = args.watchdog_s if args.watchdog_s is not None else (10.0 if args.role == "gateway" else 0.0)
    watching: asyncio.Task[None] | None = None
    if budget > 0 and args.role != "worker":
        settings = WatchdogSettings(budget_s=budget, lease_s=args.lease_s, recent_s=args.recent_s)
        watching = asyncio.create_task(Watchdog(servers, layout=_layout(args), settings=settings).run(stop))
    try:
        await _role(servers, args, stop)
    finally:
        stop.set()
        if watching is not None:
            await watching


async def _role(servers: list[str], args: argparse.Namespace, stop: asyncio.Event) -> None:
    if args.role == "gateway":
        gateway = Gateway(servers, args.ingest, layout=_layout(args), keys=args.keys, window=args.window)
        await gateway.run(stop)
    elif args.role == "worker":
        classifier = _classifier(args)
        config = MonitorConfig(
            engine_thread=False, silence_s=args.silence_s, stream_timeout_s=max(600.0, args.silence_s)
        )
        settings = WorkerSettings(
            lease_s=args.lease_s, renew_s=min(0.5, args.lease_s / 4), window_s=args.window_s, stats_s=args.stats_s
        )
        worker = Worker(
            servers, layout=_layout(args), settings=settings, config=config, classifier=classifier, name=args.name
        )
        await worker.run(stop)
    else:
        await _alarms(servers, args, stop)


def _classifier(args: argparse.Namespace) -> BeatClassifier | None:
    """The worker's classifier: the local model, or the engine service with the local model standing by."""
    model = args.model
    if args.engine and model == "none":
        model = "default"  # the service needs a local stand-in: VF and asystole never wait on it, no beat either
    if model == "none":
        return None
    local = default_classifier(None if model == "default" else model, "cpu", threads=1)
    if not args.engine:
        return local
    endpoint = args.engine
    card = getattr(local, "card", {})
    return FallbackClassifier(
        lambda: RemoteClassifier(endpoint, timeout_s=0.25), local, model_id=card.get("weights_sha256"), retry_s=10.0
    )


def cluster_main(argv: Sequence[str] | None = None) -> int:
    args = build_cluster_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_main(args))
    except (EcgMonitorError, OSError, nats.errors.Error) as exc:
        print(f"ecg-monitor --cluster: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
