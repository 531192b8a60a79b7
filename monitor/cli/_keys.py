"""``ecg-keys``: make and maintain the CURVE keys folder of a site.

::

    ecg-keys init DIR [--force]             server keypair, empty authorized/ and clients/
    ecg-keys add-client DIR NAME [--force]  client keypair, its public key authorized
    ecg-keys revoke DIR NAME                remove NAME from authorized/
    ecg-keys list DIR                       server key and every client with its status

The folder layout, the key file format and how revocation reaches running servers are described
in :mod:`monitor.transport._keystore`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.cli._options import OptionParser
from monitor.errors import ConfigError
from monitor.transport import (
    SERVER_PUBLIC,
    SERVER_SECRET,
    add_client,
    init_keys,
    list_clients,
    revoke_client,
    server_public_key,
)

__all__ = ["build_parser", "main"]

_LAYOUT = """\
KEYS folder:
  server.key               the server's public key: give it to every client
  server.key_secret        the server keypair (mode 0600): stays on the server
  authorized/NAME.key      the public key of each client the servers accept
  clients/NAME.key_secret  the keypair of client NAME (mode 0600): hand it to that client only

A client needs server.key and its own NAME.key_secret (--keys DIR --key-name NAME)."""

_NAME_HELP = "client name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def build_parser() -> OptionParser:
    p = OptionParser(
        prog="ecg-keys",
        description="Manage the CURVE keys that authenticate and encrypt the ingest, alerts and engine sockets.",
        epilog=_LAYOUT,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init",
        help="create DIR with the server keypair and empty authorized/ and clients/",
        description="Create the keys folder DIR: the server keypair and empty authorized/ and clients/ folders.",
    )
    init.add_argument("dir", metavar="DIR", help="the keys folder, created when missing")
    init.flag("--force", help="replace an existing server keypair (authorized clients stay authorized)")

    add = sub.add_parser(
        "add-client",
        help="create the keypair of client NAME and authorize it",
        description="Create the keypair clients/NAME.key_secret and copy its public key to authorized/.",
    )
    add.add_argument("dir", metavar="DIR", help="the keys folder (made by: ecg-keys init DIR)")
    add.add_argument("name", metavar="NAME", help=_NAME_HELP)
    add.flag("--force", help="replace an existing keypair of NAME")

    revoke = sub.add_parser(
        "revoke",
        help="remove NAME from authorized/ (running servers: on their next reload)",
        description="Remove authorized/NAME.key; the keypair in clients/ stays. Running servers refuse "
        "new connections of NAME once they reload authorized/.",
    )
    revoke.add_argument("dir", metavar="DIR", help="the keys folder (made by: ecg-keys init DIR)")
    revoke.add_argument("name", metavar="NAME", help=_NAME_HELP)

    show = sub.add_parser(
        "list",
        help="show the server key and every client with its status",
        description="Show the server's public key, then every client with its status and public key.",
    )
    show.add_argument("dir", metavar="DIR", help="the keys folder (made by: ecg-keys init DIR)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init":
            public = init_keys(args.dir, force=args.force)
            print(f"server keypair in {Path(args.dir) / SERVER_SECRET}; give {public} to every client")
        elif args.command == "add-client":
            secret = add_client(args.dir, args.name, force=args.force)
            print(f"client {args.name!r} authorized; hand {secret} (and {Path(args.dir) / SERVER_PUBLIC}) to it")
        elif args.command == "revoke":
            removed = revoke_client(args.dir, args.name)
            print(f"client {args.name!r} revoked ({removed} removed); servers refuse it after their next reload")
        else:
            server_public = server_public_key(args.dir)
            print(f"{'server':<24} {'':<10} {server_public}")
            for entry in list_clients(args.dir):
                print(f"{entry.name:<24} {entry.status:<10} {entry.public_key}")
    except (ConfigError, OSError) as exc:
        print(f"ecg-keys: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
