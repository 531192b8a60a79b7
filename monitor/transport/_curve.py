"""ZeroMQ CURVE authentication and encryption for the ingest, alerts and engine sockets.

Every socket pair of the project has a binding side (the server) and connecting sides (the clients):

=========  ================================  =====================================
pair       server (binds)                    clients (connect)
=========  ================================  =====================================
ingest     ``ecg-monitor`` PULL              devices, ``ecg-replay`` PUSH
alerts     ``ecg-monitor`` XPUB              ``ecg-alerts`` bridges SUB
engine     ``ecg-engine`` ROUTER             ``ecg-monitor`` DEALER
=========  ================================  =====================================

With CURVE, traffic is encrypted and a server only accepts clients whose public key is in its
``authorized/`` folder; a client only talks to the server whose public key it was given. The
check runs in a ZAP handler (pyzmq's :class:`zmq.auth.thread.ThreadAuthenticator`), one per
:class:`zmq.Context`, wrapped here by :class:`Authenticator`.

Keys directory layout (made and maintained by ``ecg-keys``)::

    KEYS/
        server.key             public key of the binding side: give it to every client
        server.key_secret      server keypair (mode 0600): stays on the server
        authorized/            public keys of the clients a server accepts
            NAME.key           one per allowed device, replayer, bridge or monitor
        clients/               client keypairs made by ``ecg-keys add-client``
            NAME.key           public half (also copied to authorized/NAME.key)
            NAME.key_secret    client keypair (mode 0600): hand it to that client only

The files are ZeroMQ certificates as written by :func:`zmq.auth.create_certificates`. A client
machine needs only ``server.key`` and ``clients/NAME.key_secret`` (in the same layout, or named
explicitly in a :class:`CurveConfig`). One KEYS folder can serve every binding process of a site
(monitor and engine then share the server keypair), or each server can have its own.

Command line::

    ecg-keys init DIR [--force]             server keypair, empty authorized/ and clients/
    ecg-keys add-client DIR NAME [--force]  client keypair, its public key authorized
    ecg-keys revoke DIR NAME                remove NAME from authorized/
    ecg-keys list DIR                       server key and every client with its status

Servers read ``authorized/`` when their :class:`Authenticator` starts and again on
:meth:`Authenticator.reload` (or :meth:`Authenticator.reload_if_changed`). CURVE checks a key
during the handshake only: revoking a key refuses new connections, while a connection already
established stays up until it is closed or reconnects.

Without keys, :func:`check_bind` logs a warning when a socket binds a TCP endpoint that other
hosts can reach; loopback addresses, ``ipc://`` and ``inproc://`` are quiet.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from monitor.errors import ConfigError

__all__ = [
    "AUTHORIZED_DIR",
    "CLIENTS_DIR",
    "SERVER_PUBLIC",
    "SERVER_SECRET",
    "ZAP_DOMAIN",
    "Authenticator",
    "ClientKey",
    "CurveConfig",
    "add_client",
    "check_bind",
    "client_from_flags",
    "init_keys",
    "is_loopback",
    "list_clients",
    "main",
    "revoke_client",
    "secure_bind",
    "secure_client",
    "secure_connect",
    "secure_server",
]

log = logging.getLogger(__name__)

SERVER_PUBLIC = "server.key"
SERVER_SECRET = "server.key_secret"
AUTHORIZED_DIR = "authorized"
CLIENTS_DIR = "clients"
ZAP_DOMAIN = "ecg-monitor"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LOCAL_TRANSPORTS = frozenset({"ipc", "inproc"})
_LOOPBACK_NAMES = frozenset({"localhost", "lo", "lo0"})

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- keys on disk


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) key of a certificate file; ConfigError naming the file when it is unusable."""
    if not path.is_file():
        raise ConfigError(f"key file {path} does not exist")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"key file {path} cannot be read: {exc}") from exc
    if secret and not secret_key:
        raise ConfigError(f"key file {path} holds no secret key (use the .key_secret file)")
    if secret and os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("secret key file %s is readable by other users; chmod 600 it", path)
    return public, secret_key


def _authorized_keys(folder: Path) -> tuple[set[bytes], tuple[tuple[str, int, int], ...]]:
    """The public keys in ``folder`` and a signature that changes when a key file is added, removed or rewritten."""
    if not folder.is_dir():
        raise ConfigError(f"authorized keys folder {folder} does not exist (run: ecg-keys init DIR)")
    keys: set[bytes] = set()
    signature: list[tuple[str, int, int]] = []
    for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
        public, _ = _load(path, secret=False)
        keys.add(public)
        st = path.stat()
        signature.append((path.name, st.st_mtime_ns, st.st_size))
    return keys, tuple(signature)


def _keys_dir(keys_dir: PathLike) -> Path:
    folder = Path(keys_dir)
    if not folder.is_dir():
        raise ConfigError(f"keys directory {folder} does not exist (run: ecg-keys init {folder})")
    return folder


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"client name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class CurveConfig:
    """Where one side of a socket pair finds its keys.

    A server config names its own keypair and the folder of authorized client keys; a client config
    names its own keypair and the server's public key. Build them with :meth:`server` and
    :meth:`client` from a KEYS folder, or give the files directly.
    """

    secret_file: Path
    authorized_dir: Path | None = None
    server_public_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.authorized_dir is None) == (self.server_public_file is None):
            raise ConfigError(
                "CurveConfig needs authorized_dir (a server) or server_public_file (a client), exactly one of them"
            )

    @classmethod
    def server(cls, keys_dir: PathLike) -> CurveConfig:
        """The binding side's config: ``KEYS/server.key_secret`` and ``KEYS/authorized/``; checks both now."""
        folder = _keys_dir(keys_dir)
        config = cls(secret_file=folder / SERVER_SECRET, authorized_dir=folder / AUTHORIZED_DIR)
        config.keypair()
        _authorized_keys(folder / AUTHORIZED_DIR)
        return config

    @classmethod
    def client(cls, keys_dir: PathLike, name: str) -> CurveConfig:
        """A connecting side's config: ``KEYS/clients/NAME.key_secret`` and ``KEYS/server.key``; checks both now."""
        folder = _keys_dir(keys_dir)
        _check_name(name)
        config = cls(
            secret_file=folder / CLIENTS_DIR / f"{name}{SECRET_SUFFIX}",
            server_public_file=folder / SERVER_PUBLIC,
        )
        config.keypair()
        config.server_public_key()
        return config

    @property
    def is_server(self) -> bool:
        return self.authorized_dir is not None

    def keypair(self) -> tuple[bytes, bytes]:
        """This side's (public, secret) key in z85, read from :attr:`secret_file`."""
        public, secret = _load(self.secret_file, secret=True)
        assert secret is not None
        return public, secret

    def server_public_key(self) -> bytes:
        """The server's public key (z85) a client checks the server against."""
        if self.server_public_file is None:
            raise ConfigError("a server CurveConfig has no server_public_file; use CurveConfig.client for clients")
        public, _ = _load(self.server_public_file, secret=False)
        return public


# --------------------------------------------------------------------------- ZAP handler


class Authenticator:
    """The ZAP handler of one zmq context: accepts CURVE clients whose key is in ``authorized/``.

    Exactly one may run per context (libzmq has one ZAP endpoint per context), and every CURVE
    server socket of that context is checked by it, so a process binding several secured sockets
    on one context shares one Authenticator. Use it as a context manager, or call :meth:`start`
    and :meth:`stop`; stop it before the context is destroyed, and close the secured sockets
    first (:func:`secure_server` makes them refuse every client while no handler runs).
    """

    def __init__(self, context: zmq.Context[Any], config: CurveConfig) -> None:
        if config.authorized_dir is None:
            raise ConfigError("Authenticator needs a server CurveConfig (with authorized_dir)")
        self.context = context
        self.authorized_dir = config.authorized_dir
        self.keys = 0
        self._thread: ThreadAuthenticator | None = None
        self._signature: tuple[tuple[str, int, int], ...] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Authenticator:
        """Start the ZAP thread and load the authorized keys; raises (and leaves nothing running) on failure."""
        if self._thread is not None:
            raise ConfigError("Authenticator already started")
        _authorized_keys(self.authorized_dir)
        thread = ThreadAuthenticator(self.context)
        try:
            thread.start()
        except zmq.ZMQError as exc:
            thread.stop()
            if exc.errno == zmq.EADDRINUSE:
                raise ConfigError(
                    "a ZAP authenticator already runs in this zmq context; share one Authenticator per context"
                ) from exc
            raise
        except BaseException:
            thread.stop()
            raise
        self._thread = thread
        try:
            self.reload()
        except BaseException:
            self.stop()
            raise
        return self

    def reload(self) -> int:
        """Read ``authorized/`` again (added and revoked keys); returns how many keys are now accepted."""
        thread = self._thread
        if thread is None:
            raise ConfigError("Authenticator is not running; start it first")
        keys, signature = _authorized_keys(self.authorized_dir)
        for domain in ("*", ZAP_DOMAIN):  # "*": any socket without a domain; ZAP_DOMAIN: set by secure_server
            thread.configure_curve(domain=domain, location=str(self.authorized_dir))
            if thread.certs.get(domain) is None:
                raise ConfigError(f"authorized keys in {self.authorized_dir} could not be loaded")
        self._signature = signature
        self.keys = len(keys)
        if keys:
            log.info("accepting %d client key(s) from %s", len(keys), self.authorized_dir)
        else:
            log.warning("no client keys in %s: every CURVE client will be refused", self.authorized_dir)
        return self.keys

    def reload_if_changed(self) -> bool:
        """:meth:`reload` when a file in ``authorized/`` was added, removed or rewritten; cheap enough to poll."""
        _, signature = _authorized_keys(self.authorized_dir)
        if signature == self._signature:
            return False
        self.reload()
        return True

    def stop(self) -> None:
        """Stop the ZAP thread and close its sockets; does nothing when not running."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def __enter__(self) -> Authenticator:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- sockets


def _require_unused(sock: zmq.Socket[Any], what: str) -> None:
    if sock.getsockopt(zmq.LAST_ENDPOINT):
        raise ConfigError(f"{what} must be called before the socket binds or connects")


def client_from_flags(keys_dir: PathLike | None, key_name: str | None, whose: str) -> CurveConfig | None:
    """The client config for a program's ``--keys DIR --key-name NAME``: None without ``--keys``;
    a :class:`ConfigError` naming the missing flag when only ``--keys`` is given."""
    if not keys_dir:
        return None
    if not key_name:
        raise ConfigError(f"--keys needs --key-name NAME ({whose} key, made with: ecg-keys add-client DIR NAME)")
    return CurveConfig.client(keys_dir, key_name)


def secure_server(sock: zmq.Socket[Any], config: CurveConfig, authenticator: Authenticator) -> None:
    """Make ``sock`` a CURVE server checked by ``authenticator``; call before ``bind``."""
    if not config.is_server:
        raise ConfigError("secure_server needs a server CurveConfig (CurveConfig.server)")
    if not authenticator.running:
        raise ConfigError("secure_server needs a running Authenticator: without one CURVE accepts any client key")
    if authenticator.context is not sock.context:
        raise ConfigError("the Authenticator runs in another zmq context than the socket; ZAP works per context")
    _require_unused(sock, "secure_server")
    public, secret = config.keypair()
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    # A named domain with ZAP enforced: should the handler be gone, libzmq refuses every client
    # instead of admitting them unchecked. The domain must be set first: enforcing with an empty
    # domain would make libzmq skip ZAP altogether.
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    try:
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    except zmq.ZMQError as exc:  # a libzmq built without the option: ZAP still runs, fail-open if stopped
        if exc.errno != zmq.EINVAL:
            raise


def secure_client(sock: zmq.Socket[Any], config: CurveConfig) -> None:
    """Make ``sock`` a CURVE client that only talks to the configured server; call before ``connect``."""
    if config.is_server:
        raise ConfigError("secure_client needs a client CurveConfig (CurveConfig.client)")
    _require_unused(sock, "secure_client")
    public, secret = config.keypair()
    server_key = config.server_public_key()
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)


def secure_bind(
    sock: zmq.Socket[Any],
    endpoint: str,
    config: CurveConfig | None = None,
    authenticator: Authenticator | None = None,
) -> str:
    """Bind ``sock`` to ``endpoint``, secured when ``config`` is given, warned about when exposed without it.

    Returns the endpoint actually bound (``LAST_ENDPOINT``, with a wildcard port resolved).
    """
    if config is not None:
        if authenticator is None:
            raise ConfigError(f"binding {endpoint} with CURVE keys needs a running Authenticator")
        secure_server(sock, config, authenticator)
    check_bind(endpoint, secured=config is not None)
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def secure_connect(sock: zmq.Socket[Any], endpoint: str, config: CurveConfig | None = None) -> None:
    """Connect ``sock`` to ``endpoint``, as a CURVE client when ``config`` is given."""
    if config is not None:
        secure_client(sock, config)
    sock.connect(endpoint)


# --------------------------------------------------------------------------- loopback guard


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    transport, sep, address = endpoint.partition("://")
    if not sep or not transport or not address:
        raise ConfigError(f"endpoint {endpoint!r} is not of the form transport://address")
    return transport.lower(), address


def is_loopback(endpoint: str) -> bool:
    """True when only this host can reach ``endpoint``: ipc://, inproc://, or tcp on 127.0.0.0/8, ::1, localhost."""
    transport, address = _split_endpoint(endpoint)
    if transport in _LOCAL_TRANSPORTS:
        return True
    if transport != "tcp":
        return False
    address = address.rsplit(";", 1)[-1]  # connect-side "source;destination"
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # "*", an interface or host name: assume reachable from elsewhere
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def check_bind(endpoint: str, secured: bool) -> str | None:
    """Warn (log and return the message) when ``endpoint`` is reachable from other hosts and not secured."""
    if secured or is_loopback(endpoint):
        return None
    message = (
        f"binding {endpoint} without CURVE keys: any host that can reach it may connect and send or read "
        "unauthenticated, unencrypted data; bind to 127.0.0.1 or ipc://, or secure it with keys (ecg-keys init)"
    )
    log.warning(message)
    return message


# --------------------------------------------------------------------------- key management


@dataclass(frozen=True)
class ClientKey:
    """One client of a KEYS folder, as ``ecg-keys list`` shows it."""

    name: str
    public_key: str
    authorized: bool
    has_keypair: bool

    @property
    def status(self) -> str:
        if self.authorized:
            return "authorized" if self.has_keypair else "authorized (keypair not here)"
        return "revoked"


def _write_keypair(folder: Path, name: str, force: bool) -> tuple[Path, Path]:
    """Create ``folder/NAME.key`` and ``folder/NAME.key_secret`` (0600) without a readable window."""
    public = folder / f"{name}{PUBLIC_SUFFIX}"
    secret = folder / f"{name}{SECRET_SUFFIX}"
    if not force:
        for path in (secret, public):
            if path.exists():
                raise ConfigError(f"{path} already exists; pass --force to replace it")
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=folder))  # mode 0700
    try:
        new_public, new_secret = zmq.auth.create_certificates(staging, name)
        os.chmod(new_secret, 0o600)
        os.chmod(new_public, 0o644)
        os.replace(new_secret, secret)
        os.replace(new_public, public)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return public, secret


def _require_initialized(keys_dir: PathLike) -> Path:
    folder = _keys_dir(keys_dir)
    for path in (folder / SERVER_PUBLIC, folder / AUTHORIZED_DIR):
        if not path.exists():
            raise ConfigError(f"{folder} is not a keys directory: {path} is missing (run: ecg-keys init {folder})")
    return folder


def init_keys(keys_dir: PathLike, force: bool = False) -> Path:
    """Create KEYS with a server keypair and empty ``authorized/`` and ``clients/``; returns ``server.key``."""
    folder = Path(keys_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"keys directory {folder} exists and is not a directory")
    if not force:
        for name in (SERVER_SECRET, SERVER_PUBLIC):
            if (folder / name).exists():
                raise ConfigError(f"{folder / name} already exists; pass --force to replace the server keypair")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / AUTHORIZED_DIR).mkdir(mode=0o755, exist_ok=True)
    (folder / CLIENTS_DIR).mkdir(mode=0o700, exist_ok=True)
    public, _ = _write_keypair(folder, "server", force)
    return public


def add_client(keys_dir: PathLike, name: str, force: bool = False) -> Path:
    """Create the keypair ``clients/NAME`` and authorize its public key; returns the secret file."""
    folder = _require_initialized(keys_dir)
    _check_name(name)
    clients = folder / CLIENTS_DIR
    authorized = folder / AUTHORIZED_DIR / f"{name}{PUBLIC_SUFFIX}"
    if not force and authorized.exists():
        raise ConfigError(f"{authorized} already exists; pass --force to replace client {name!r}")
    clients.mkdir(mode=0o700, exist_ok=True)
    public, secret = _write_keypair(clients, name, force)
    staged = authorized.with_name(f".{authorized.name}.tmp")
    shutil.copyfile(public, staged)
    os.replace(staged, authorized)
    return secret


def revoke_client(keys_dir: PathLike, name: str) -> Path:
    """Remove NAME's public key from ``authorized/`` (its keypair in ``clients/`` stays); returns the removed path."""
    folder = _require_initialized(keys_dir)
    _check_name(name)
    authorized = folder / AUTHORIZED_DIR / f"{name}{PUBLIC_SUFFIX}"
    if not authorized.is_file():
        raise ConfigError(f"client {name!r} is not authorized: {authorized} does not exist")
    authorized.unlink()
    return authorized


def list_clients(keys_dir: PathLike) -> list[ClientKey]:
    """Every client named in ``authorized/`` or ``clients/``, sorted by name."""
    folder = _require_initialized(keys_dir)
    authorized = {p.name[: -len(PUBLIC_SUFFIX)]: p for p in (folder / AUTHORIZED_DIR).glob(f"*{PUBLIC_SUFFIX}")}
    clients = folder / CLIENTS_DIR
    pairs = {p.name[: -len(SECRET_SUFFIX)]: p for p in clients.glob(f"*{SECRET_SUFFIX}")} if clients.is_dir() else {}
    entries = []
    for name in sorted(authorized.keys() | pairs.keys()):
        source = authorized.get(name) or pairs[name]
        public, _ = _load(source, secret=False)
        entries.append(ClientKey(name, public.decode("ascii"), name in authorized, name in pairs))
    return entries


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ecg-keys",
        description="Manage the CURVE keys that authenticate and encrypt the ingest, alerts and engine sockets.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", help="create DIR with the server keypair and empty authorized/ and clients/")
    init.add_argument("dir", metavar="DIR")
    init.add_argument("--force", action="store_true", help="replace an existing server keypair")
    add = sub.add_parser("add-client", help="create the keypair of client NAME and authorize it")
    add.add_argument("dir", metavar="DIR")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--force", action="store_true", help="replace an existing keypair of NAME")
    revoke = sub.add_parser("revoke", help="remove NAME from authorized/ (running servers: on their next reload)")
    revoke.add_argument("dir", metavar="DIR")
    revoke.add_argument("name", metavar="NAME")
    show = sub.add_parser("list", help="show the server key and every client with its status")
    show.add_argument("dir", metavar="DIR")
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
            folder = _require_initialized(args.dir)
            server_public, _ = _load(folder / SERVER_PUBLIC, secret=False)
            print(f"{'server':<24} {'':<10} {server_public.decode('ascii')}")
            for entry in list_clients(folder):
                print(f"{entry.name:<24} {entry.status:<10} {entry.public_key}")
    except (ConfigError, OSError) as exc:
        print(f"ecg-keys: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
