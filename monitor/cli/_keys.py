"""``ecg-keys``: make and maintain the CURVE keys folder of a site.

::

    ecg-keys init DIR [--force]             server keypair, empty authorized/ and clients/
    ecg-keys add-client DIR NAME [--role ROLE] [--streams PATTERN,...] [--force]
                                            client keypair, its policy, its public key authorized
    ecg-keys policy DIR NAME [--role ROLE] [--streams PATTERN,...]
                                            change what NAME may do (its keys stay)
    ecg-keys revoke DIR NAME                remove NAME from authorized/
    ecg-keys list DIR                       server key and every client with status, role, streams

The folder layout, the key and policy file formats and how revocation reaches running servers are
described in :mod:`monitor.transport._keystore`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.cli._options import OptionParser
from monitor.errors import ConfigError
from monitor.transport import (
    ROLES,
    SERVER_PUBLIC,
    SERVER_SECRET,
    add_client,
    init_keys,
    list_clients,
    revoke_client,
    server_public_key,
    set_policy,
)

__all__ = ["build_parser", "main"]

_LAYOUT = """\
KEYS folder:
  server.key               the server's public key: give it to every client
  server.key_secret        the server keypair (mode 0600): stays on the server
  authorized/NAME.key      the public key of each client the servers accept
  authorized/NAME.json     what NAME may do: {"role": "device", "streams": ["bed-*"]}
  clients/NAME.key_secret  the keypair of client NAME (mode 0600): hand it to that client only

Roles: a device pushes samples of the stream ids matching its --streams patterns (shell-style:
* ? [0-9]; default *, every stream); a bridge subscribes to the alert bus and never pushes; a monitor
uses an engine. A client without NAME.json (made before policies existed) is a device of every stream.
A client needs server.key and its own NAME.key_secret (--keys DIR --key-name NAME)."""
_ROLE_HELP = "device (pushes samples, the default), bridge (subscribes to alerts) or monitor (uses an engine)"
_STREAMS_HELP = "stream id patterns a device may push, shell-style (quote them: 'bed-*'); default: every stream (*)"


def _policy_options(parser: OptionParser) -> None:
    parser.add_argument("--role", choices=ROLES, default="device", help=_ROLE_HELP)
    parser.add_argument(
        "--streams", type=_patterns, action="extend", metavar="PATTERN[,PATTERN...]", default=None, help=_STREAMS_HELP
    )


def _patterns(text: str) -> list[str]:
    """``bed-1,bed-2`` as its patterns (a pattern never holds a comma)."""
    return [pattern.strip() for pattern in text.split(",")]


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
        description="Create the keypair clients/NAME.key_secret, write the policy authorized/NAME.json "
        "(role and stream patterns) and copy the public key to authorized/.",
    )
    add.add_argument("dir", metavar="DIR", help="the keys folder (made by: ecg-keys init DIR)")
    add.add_argument("name", metavar="NAME", help=_NAME_HELP)
    _policy_options(add)
    add.flag("--force", help="replace an existing keypair of NAME")

    policy = sub.add_parser(
        "policy",
        help="change the role and stream patterns of client NAME (its keys stay)",
        description="Rewrite authorized/NAME.json; running servers apply it once they reload authorized/.",
    )
    policy.add_argument("dir", metavar="DIR", help="the keys folder (made by: ecg-keys init DIR)")
    policy.add_argument("name", metavar="NAME", help=_NAME_HELP)
    _policy_options(policy)

    revoke = sub.add_parser(
        "revoke",
        help="remove NAME from authorized/ (running servers: on their next reload)",
        description="Remove authorized/NAME.key; the keypair in clients/ and the policy stay. Running servers "
        "refuse NAME's new connections and the messages of its established ones once they reload authorized/ "
        "(the monitor looks every few seconds).",
    )
    revoke.add_argument("dir", metavar="DIR", help="the keys folder (made by: ecg-keys init DIR)")
    revoke.add_argument("name", metavar="NAME", help=_NAME_HELP)

    show = sub.add_parser(
        "list",
        help="show the server key and every client with its status, role and streams",
        description="Show the server's public key, then every client with its status, role (with a device's "
        "stream patterns; '(default)': no policy file) and public key.",
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
            secret = add_client(args.dir, args.name, force=args.force, role=args.role, streams=args.streams)
            print(f"client {args.name!r} authorized; hand {secret} (and {Path(args.dir) / SERVER_PUBLIC}) to it")
        elif args.command == "policy":
            path = set_policy(args.dir, args.name, role=args.role, streams=args.streams)
            print(f"policy of client {args.name!r} written to {path}; servers apply it after their next reload")
        elif args.command == "revoke":
            removed = revoke_client(args.dir, args.name)
            print(f"client {args.name!r} revoked ({removed} removed); servers refuse it after their next reload")
        else:
            server_public = server_public_key(args.dir)
            print(f"{'server':<24} {'':<10} {'':<24} {server_public}")
            for entry in list_clients(args.dir):
                print(f"{entry.name:<24} {entry.status:<10} {entry.access:<24} {entry.public_key}")
    except (ConfigError, OSError) as exc:
        print(f"ecg-keys: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
