"""The KEYS folder: the CURVE keypairs of a site and the list of clients its servers accept.

Layout (made and maintained by ``ecg-keys``, or by :func:`init_keys`, :func:`add_client` and
:func:`revoke_client`)::

    KEYS/                      mode 0700
        server.key             public key of the binding side (0644): give it to every client
        server.key_secret      server keypair (0600): stays on the server
        authorized/            (0755) public keys of the clients a server accepts
            NAME.key           one per allowed device, replayer, bridge or monitor (0644)
        clients/               (0700) client keypairs made by ``ecg-keys add-client``
            NAME.key           public half (0644), also copied to authorized/NAME.key
            NAME.key_secret    client keypair (0600): hand it to that client only

NAME is 1 to 64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit; the server's
own keypair is named ``server``.

File format: ZeroMQ certificates as written by :func:`zmq.auth.create_certificates` and read by
:func:`zmq.auth.load_certificate`: a few ``#`` comment lines, then a ZPL (ZeroMQ property language)
document holding the keys as 40-character Z85 strings::

    metadata
    curve
        public-key = "<40 Z85 characters>"
        secret-key = "<40 Z85 characters>"

A ``.key`` file holds the ``public-key`` line only; a ``.key_secret`` file holds both lines, so it is
the whole keypair. A keypair is generated in a private staging folder and moved into place (already
0600) with :func:`os.replace`, so a secret is never readable by others, not even briefly; a secret
file that is (after a careless copy) is reported with a warning when it is loaded.

A client machine needs only ``server.key`` and its ``clients/NAME.key_secret`` (in the same layout, or
named explicitly in a :class:`~monitor.transport.CurveConfig`). One KEYS folder can serve every
binding process of a site (monitor and engine then share the server keypair), or each server can
have its own.

Revocation removes ``authorized/NAME.key`` and nothing else: the keypair in ``clients/`` stays, so
``ecg-keys list`` shows NAME as revoked, and adding NAME again with ``--force`` issues a fresh
keypair. A running server sees the change when its Authenticator reads ``authorized/`` again
(``Authenticator.reload``, or ``Authenticator.reload_if_changed``, which ``ecg-monitor`` calls each
time it publishes a status on its alerts socket). CURVE checks a key during the handshake
only: revoking refuses new connections, while a connection already established stays up until it
is closed or reconnects. Replacing the server keypair (``ecg-keys init --force``) keeps every
client authorized, but each client then needs the new ``server.key``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from monitor.errors import ConfigError

__all__ = [
    "AUTHORIZED_DIR",
    "CLIENTS_DIR",
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "SERVER_PUBLIC",
    "SERVER_SECRET",
    "ClientKey",
    "PathLike",
    "add_client",
    "init_keys",
    "list_clients",
    "revoke_client",
    "server_public_key",
]

log = logging.getLogger(__name__)

SERVER_PUBLIC = "server.key"
SERVER_SECRET = "server.key_secret"
AUTHORIZED_DIR = "authorized"
CLIENTS_DIR = "clients"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- reading keys


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


def _require_initialized(keys_dir: PathLike) -> Path:
    folder = _keys_dir(keys_dir)
    for path in (folder / SERVER_PUBLIC, folder / AUTHORIZED_DIR):
        if not path.exists():
            raise ConfigError(f"{folder} is not a keys directory: {path} is missing (run: ecg-keys init {folder})")
    return folder


# --------------------------------------------------------------------------- writing keys


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


# --------------------------------------------------------------------------- listing keys


def server_public_key(keys_dir: PathLike) -> str:
    """The server's public key (Z85 text) of an initialized KEYS folder."""
    folder = _require_initialized(keys_dir)
    public, _ = _load(folder / SERVER_PUBLIC, secret=False)
    return public.decode("ascii")


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
