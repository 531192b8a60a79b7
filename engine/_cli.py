"""``ecg-engine``: the inference engine as its own process, serving monitors over ZeroMQ.

The command line is not part of the engine's runtime: it may use the monitor's
option layer and its CURVE transport, which the engine itself never imports.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack

import zmq

from engine._backends import BACKENDS, EXTRA_BACKENDS
from engine._batcher import BatcherConfig
from engine._errors import EngineError
from monitor.cli import (
    LOG_LEVELS,
    OptionParser,
    field_default,
    non_negative,
    positive,
    setup_logging,
    stop_on_signals,
)

__all__ = ["build_parser", "main"]

DEFAULT_BIND = "tcp://127.0.0.1:5560"


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-engine",
        description="Serve beat classification to monitors over ZeroMQ: the beats of every connected monitor "
        "are batched together, so many CPU monitors can share one GPU.",
    )
    p.option("--bind", env="ENGINE_BIND", default=DEFAULT_BIND, help="ROUTER endpoint the monitors connect to")
    p.option("--model", env="MODEL", help="weights file with its model card beside it; none: the shipped model")
    p.option(
        "--backend",
        env="BACKEND",
        default="auto",
        choices=("auto", *BACKENDS, *EXTRA_BACKENDS),
        help="where the CNN runs; auto: tensorrt, else cuda, else cpu; an absent one falls back with a warning",
    )
    p.option("--threads", type=non_negative(int), default=0, help="CPU threads of the cpu backend; 0: PyTorch's own")
    p.option(
        "--latency-budget-ms",
        env="LATENCY_BUDGET_MS",
        type=positive(float, "ms"),
        default=1000 * field_default(BatcherConfig, "latency_budget_s"),
        help="longest wait of a beat for its label, batching included",
    )
    p.option("--keys", env="KEYS", help="CURVE keys folder (ecg-keys init): serve authorized monitors only")
    p.option("--log-level", env="LOG_LEVEL", default="info", choices=LOG_LEVELS, help="logging level")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from engine._classifier import DEFAULT_WEIGHTS, CnnClassifier
    from engine._service import BindHook, EngineServer
    from monitor.errors import EcgMonitorError
    from monitor.transport import Authenticator, CurveConfig, secure_bind

    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    with ExitStack() as resources:
        try:
            clf = CnnClassifier.load(args.model or DEFAULT_WEIGHTS, args.backend, args.threads)
            batcher = BatcherConfig(latency_budget_s=args.latency_budget_ms / 1000)
            bind: BindHook = secure_bind  # plain, with a warning when other hosts can reach it
            if args.keys:
                curve = CurveConfig.server(args.keys)
                auth = resources.enter_context(Authenticator(ctx, curve))
                bind = functools.partial(secure_bind, config=curve, authenticator=auth)
            model_id = str(clf.card.get("weights_sha256", ""))
            server = EngineServer(clf.backend, clf.rep_cfg, args.bind, batcher, ctx, bind=bind, model_id=model_id)
        except (OSError, ValueError, EngineError, EcgMonitorError) as exc:
            print(f"ecg-engine: error: {exc}", file=sys.stderr)
            return 2
        stop = threading.Event()
        stop_on_signals(stop.set)
        try:
            server.run(stop)
        except zmq.ZMQError as exc:
            print(f"ecg-engine: error: --bind {args.bind}: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
