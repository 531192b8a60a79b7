"""``ecg-central``: the central station in a browser, for the beds of one or more monitors' alert buses.

    ecg-central --connect tcp://127.0.0.1:5570 --bind 127.0.0.1:8080
    ecg-central --connect tcp://mon-a:5570 --connect tcp://mon-b:5570 --bind 0.0.0.0:8080 --web-token-file token

Monitors must publish strips (``ecg-monitor --alerts ... --wave``). Beyond loopback, ``--web-token-file`` is
required: the page asks for the token once and keeps a session cookie.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

import zmq

from monitor.cli._options import OptionParser, host_port, setup_logging, stop_on_signals
from monitor.errors import ConfigError
from monitor.transport import client_from_flags

__all__ = ["build_parser", "main"]

PROG = "ecg-central"


def build_parser() -> OptionParser:
    p = OptionParser(prog=PROG, description="Central station in a browser: every bed's ECG, heart rate and alarms.")
    p.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="a monitor's alert bus (its --alerts endpoint); repeat for several monitors",
    )
    p.option(
        "--bind",
        env="WEB",
        type=host_port,
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="where the page is served; beyond loopback --web-token-file is required",
    )
    p.option("--web-token-file", env="WEB_TOKEN_FILE", help="file holding the station token (mode 600, ≥ 16 chars)")
    p.option(
        "--alarm-log",
        env="ALARM_LOG",
        help="SQLite alarm log the monitors write (on this host): the page shows its review strips (default: "
        "none); acknowledgements go to the monitors, which keep them in their logs and publish them",
    )
    p.option("--keys", env="KEYS", help="CURVE keys folder: connect to the buses as a CURVE client")
    p.option("--key-name", env="KEY_NAME", help="this station's client key name, with --keys")
    p.logging_option(default="info")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from monitor.web import Station, read_token  # aiohttp is imported only here

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if not args.connect:
        parser.error("--connect is required, e.g. --connect tcp://127.0.0.1:5570 (a monitor's --alerts endpoint)")
    host, port = args.bind
    try:
        token = read_token(args.web_token_file)
        curve = client_from_flags(args.keys, args.key_name, "this station's")
        endpoints = [(c, None) for c in args.connect]
        station = Station(endpoints, host, port, token=token, curve=curve, alarm_log=args.alarm_log).start()
    except (ConfigError, ValueError, OSError, zmq.ZMQError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(f"{PROG}: serving {station.url}", file=sys.stderr, flush=True)
    stop = threading.Event()
    stop_on_signals(stop.set)
    try:
        stop.wait()
    finally:
        station.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
