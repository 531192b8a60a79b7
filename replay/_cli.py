"""``ecg-replay``: a standalone device simulator publishing WFDB records over ZeroMQ."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

import zmq

from monitor.cli import (
    OptionParser,
    field_default,
    non_negative,
    setup_logging,
    stop_on_signals,
)
from monitor.errors import EcgMonitorError
from monitor.transport import client_from_flags, secure_connect
from replay._options import add_replay_options
from replay._publisher import ReplayConfig, Replayer
from replay._records import RecordRef, check_data_dir, database_records, read_header, resolve_record

__all__ = ["build_parser", "main"]

#: How long frames still queued at the end of a finished replay may take to reach the monitor (ms).
FINAL_LINGER_MS = 10_000


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-replay",
        description="Publish WFDB records over ZeroMQ (PUSH) in the monitor's wire format, as bedside devices would.",
    )
    p.add_argument("records", nargs="+", help="record names (in --data-dir), paths to records, or 'mitdb'")
    p.option(
        "--connect", env="CONNECT", help="monitor endpoint, e.g. tcp://127.0.0.1:5555", default_text="none, required"
    )
    add_replay_options(p)
    p.option(
        "--stagger-s",
        type=non_negative(float, "s"),
        default=field_default(ReplayConfig, "stagger_s"),
        help="delay between the starts of successive streams",
    )
    p.flag("--offline", env="OFFLINE", help="never download records")
    p.option("--keys", env="KEYS", help="CURVE keys folder holding server.key and this device's key")
    p.option("--key-name", env="KEY_NAME", help="this device's client key name (ecg-keys add-client)")
    p.logging_option()
    return p


def _wait_for_monitor(sock: zmq.Socket[bytes], endpoint: str, stop: threading.Event) -> bool:
    """Wait until the monitor at ``endpoint`` takes frames (said once when it is not there yet); False if stopped.

    The socket is ``IMMEDIATE``: it queues nothing until a connection is made,
    so a frame is never sent into a queue no monitor reads.
    """
    if sock.poll(200, zmq.POLLOUT):
        return True
    print(f"ecg-replay: waiting for the monitor at {endpoint} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    while not stop.is_set():
        if sock.poll(100, zmq.POLLOUT):
            print("ecg-replay: connected", file=sys.stderr, flush=True)
            return True
    return False


def _records(args: argparse.Namespace) -> list[RecordRef]:
    check_data_dir(args.data_dir)
    refs: list[RecordRef] = []
    for name in args.records:
        if name == "mitdb":
            refs.extend(database_records(args.data_dir, offline=args.offline or None))
        else:
            refs.append(resolve_record(name, args.data_dir, offline=args.offline or None))
    for ref in refs:
        read_header(ref)
    return refs


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.connect:
        parser.error("--connect ENDPOINT is required (or set ECG_MONITOR_CONNECT)")
    try:
        refs = _records(args)
        config = ReplayConfig(
            chunk_s=args.chunk_ms / 1000.0, speed=args.speed, loop=args.loop, stagger_s=args.stagger_s
        )
        replayer = Replayer(refs, config)
        curve = client_from_flags(args.keys, args.key_name, "the device's")
    except EcgMonitorError as exc:
        print(f"ecg-replay: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    stop_on_signals(stop.set)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    try:
        try:
            secure_connect(sock, args.connect, curve)
        except EcgMonitorError as exc:
            print(f"ecg-replay: error: {exc}", file=sys.stderr)
            return 2
        except zmq.ZMQError as exc:
            print(f"ecg-replay: error: --connect {args.connect}: {exc.strerror.split(' (addr=')[0]}", file=sys.stderr)
            return 2
        if not _wait_for_monitor(sock, args.connect, stop):
            print("ecg-replay: stopped before the monitor was reached; nothing sent", file=sys.stderr)
            return 0
        try:
            replayer.run(sock, stop)
        except EcgMonitorError as exc:
            print(f"ecg-replay: error: {exc}", file=sys.stderr)
            return 2
        if not stop.is_set():  # finished: let the frames still queued reach the monitor, for a bounded time
            sock.setsockopt(zmq.LINGER, FINAL_LINGER_MS)
    finally:
        sock.close()
        ctx.term()
    what = "stopped after sending" if stop.is_set() else "sent"
    print(f"ecg-replay: {what} {replayer.frames_sent} frames from {len(refs)} record(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
