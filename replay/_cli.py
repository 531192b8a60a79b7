"""``ecg-replay``: a standalone device simulator publishing WFDB records over ZeroMQ."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

import zmq

from monitor.cli._options import EnvHelpFormatter, env_default, env_flag, setup_logging, stop_on_signals
from monitor.errors import EcgMonitorError
from monitor.transport import client_from_flags, secure_connect
from replay._publisher import ReplayConfig, Replayer, parse_speed
from replay._records import RecordRef, database_records, resolve_record

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ecg-replay",
        description="Publish WFDB records over ZeroMQ (PUSH) in the monitor's wire format, as bedside devices would.",
        formatter_class=EnvHelpFormatter,
    )
    p.add_argument("records", nargs="+", help="record names (in --data-dir), paths to records, or 'mitdb'")
    p.add_argument("--connect", default=env_default("CONNECT"), help="monitor endpoint, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--data-dir", default=env_default("DATA"), help="folder of WFDB records (ECG_MONITOR_DATA)")
    p.add_argument("--speed", default=env_default("SPEED", "1"), help="multiple of real time, or 'max'")
    p.add_argument("--chunk-ms", type=float, default=float(env_default("CHUNK_MS", 100)), help="chunk length")
    p.add_argument("--loop", action="store_true", default=env_flag("LOOP"), help="start over at the end")
    p.add_argument("--stagger-s", type=float, default=0.0, help="delay between the starts of successive streams")
    p.add_argument("--offline", action="store_true", default=env_flag("OFFLINE"), help="never download records")
    p.add_argument(
        "--keys", default=env_default("KEYS"), help="CURVE keys folder holding server.key and this device's key"
    )
    p.add_argument(
        "--key-name", default=env_default("KEY_NAME"), help="this device's client key name (ecg-keys add-client)"
    )
    p.add_argument("--log-level", default=env_default("LOG_LEVEL", "warning"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.connect:
        parser.error("--connect ENDPOINT is required (or set ECG_MONITOR_CONNECT)")
    try:
        refs: list[RecordRef] = []
        for name in args.records:
            if name == "mitdb":
                refs.extend(database_records(args.data_dir, offline=args.offline or None))
            else:
                refs.append(resolve_record(name, args.data_dir, offline=args.offline or None))
        config = ReplayConfig(
            chunk_s=args.chunk_ms / 1000.0, speed=parse_speed(args.speed), loop=args.loop, stagger_s=args.stagger_s
        )
        replayer = Replayer(refs, config)
    except EcgMonitorError as exc:
        print(f"ecg-replay: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    stop_on_signals(stop.set)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 10_000)  # let queued frames reach the monitor
    try:
        curve = client_from_flags(args.keys, args.key_name, "the device's")
        secure_connect(sock, args.connect, curve)
    except EcgMonitorError as exc:
        sock.close()
        ctx.term()
        print(f"ecg-replay: error: {exc}", file=sys.stderr)
        return 2
    except zmq.ZMQError as exc:
        print(f"ecg-replay: error: --connect {args.connect!r}: {exc}", file=sys.stderr)
        return 2
    try:
        replayer.run(sock, stop)
    except EcgMonitorError as exc:
        print(f"ecg-replay: error: {exc}", file=sys.stderr)
        return 2
    finally:
        sock.close()
        ctx.term()
    print(f"ecg-replay: sent {replayer.frames_sent} frames from {len(refs)} record(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
