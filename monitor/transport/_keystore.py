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

Key file format: ZeroMQ certificates as written by :func:`zmq.auth.create_certificates` and read by
:func:`zmq.auth.load_certificate` (and by CZMQ's ``zcert_load``): a few ``#`` comment lines, then a
ZPL (ZeroMQ property language) document holding the keys as 40-character Z85 strings::

    metadata
    curve
        public-key = "<40 Z85 characters>"
        secret-key = "<40 Z85 characters>"

A ``.key`` file holds the ``public-key`` line only; a ``.key_secret`` file holds both lines, so it is
the whole keypair. Z85 text is what libzmq's ``ZMQ_CURVE_PUBLICKEY``, ``ZMQ_CURVE_SECRETKEY`` and
``ZMQ_CURVE_SERVERKEY`` options take (as a 40-character string, 41 bytes with its NUL). A keypair is
generated in a private staging folder and moved into place (already 0600) with :func:`os.replace`,
so a secret is never readable by others, not even briefly; a secret file that is (after a careless
copy) is reported with a warning when it is loaded.

Policy file format: ``authorized/NAME.json`` says what client NAME may do once authenticated
(written by ``ecg-keys add-client DIR NAME --role ROLE --streams PATTERN...``, schema
:data:`POLICY_SCHEMA`)::

    {"role": "device", "streams": ["bed-*", "icu-1?"]}

* ``role``: ``device`` may push samples to a monitor's ingest socket, for the stream ids that
  match one of its ``streams`` patterns; ``bridge`` may subscribe to a monitor's alert bus and never
  push; ``monitor`` may use an engine (and subscribe).
* ``streams``: shell-style patterns (:func:`fnmatch.fnmatchcase`: ``*``, ``?``, ``[0-9]``; case
  matters) for a device's stream ids; ``["*"]`` is every stream. Devices only: other roles have none.

A client with a public key in ``authorized/`` and no policy file (a KEYS folder made before policies
existed) is a ``device`` allowed every stream, as every client was then, and, predating roles, it
also passes the role checks of the alert bus and the engine (:meth:`Authorizer.check_role`);
``ecg-keys policy DIR NAME --role ...`` gives it a policy. A policy file that cannot
be read or does not match the schema refuses its client altogether (logged), so a typo never widens
what a key may do. The policy file is written before the public key, so a new client never shows up
without its policy.

A client machine needs only ``server.key`` and its ``clients/NAME.key_secret`` (in the same layout, or
named explicitly in a :class:`~monitor.transport.CurveConfig`). One KEYS folder can serve every
binding process of a site (monitor and engine then share the server keypair), or each server can
have its own.

Revocation removes ``authorized/NAME.key`` and nothing else: the keypair in ``clients/`` and the
policy stay, so ``ecg-keys list`` shows NAME as revoked with its role, and adding NAME again with
``--force`` issues a fresh keypair. A running server sees the change when its Authenticator reads
``authorized/`` again (``Authenticator.reload``, or ``Authenticator.reload_if_changed``, which
``ecg-monitor`` polls every few seconds). CURVE checks a key during the handshake only, so the
handshake refuses new connections of a revoked key, and the per-message check of
:class:`~monitor.transport.Authorizer` (the key named by each message's ZAP ``User-Id``, looked up
in the current key set) refuses what an established connection of that key still sends.

Replacing the server keypair (``ecg-keys init --force``) keeps every
client authorized, but each client then needs the new ``server.key``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import zmq.auth

from monitor.errors import ConfigError

__all__ = [
    "AUTHORIZED_DIR",
    "CLIENTS_DIR",
    "POLICY_SCHEMA",
    "POLICY_SUFFIX",
    "PUBLIC_SUFFIX",
    "ROLES",
    "SECRET_SUFFIX",
    "SERVER_PUBLIC",
    "SERVER_SECRET",
    "ClientKey",
    "ClientPolicy",
    "PathLike",
    "add_client",
    "init_keys",
    "list_clients",
    "make_policy",
    "read_policy",
    "revoke_client",
    "server_public_key",
    "set_policy",
]

log = logging.getLogger(__name__)

SERVER_PUBLIC = "server.key"
SERVER_SECRET = "server.key_secret"
AUTHORIZED_DIR = "authorized"
CLIENTS_DIR = "clients"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
POLICY_SUFFIX = ".json"
ROLES = ("device", "bridge", "monitor")
ALL_STREAMS = ("*",)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PATTERN = r"^[A-Za-z0-9._*?!\[\]-]{1,64}$"  # stream id characters and fnmatch's wildcards

POLICY_SCHEMA: dict[str, object] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ecg-monitor client policy (authorized/NAME.json)",
    "type": "object",
    "properties": {
        "role": {"enum": list(ROLES)},
        "streams": {"type": "array", "items": {"type": "string", "pattern": _PATTERN}, "maxItems": 256},
    },
    "required": ["role"],
    "additionalProperties": False,
    "if": {"properties": {"role": {"const": "device"}}},
    "then": {"required": ["streams"], "properties": {"streams": {"minItems": 1}}},
    "else": {"properties": {"streams": {"maxItems": 0}}},
}
_POLICY_VALIDATOR = jsonschema.Draft202012Validator(POLICY_SCHEMA)

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


@dataclass(frozen=True)
class ClientPolicy:
    """What one authenticated client may do: its ``role`` and, for a device, its stream id patterns."""

    name: str
    role: str = "device"
    streams: tuple[str, ...] = ALL_STREAMS
    legacy: bool = False  # no policy file: a device allowed every stream

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"client {self.name!r}: role {self.role!r} is not one of {', '.join(ROLES)}")
        if self.role != "device" and self.streams:
            raise ConfigError(f"client {self.name!r}: only a device has stream patterns (role {self.role})")
        if self.role == "device" and not self.streams:
            raise ConfigError(f"client {self.name!r}: a device needs at least one stream pattern")
        regex = "|".join(fnmatch.translate(pattern) for pattern in self.streams) or r"(?!)"
        object.__setattr__(self, "_match", re.compile(regex).match)

    def may_push(self, stream: str) -> bool:
        """True when this client may send samples of ``stream``: a device whose patterns match it."""
        match: Any = self.__dict__["_match"]
        return self.role == "device" and match(stream) is not None

    def describe(self) -> str:
        """The role, with a device's patterns: ``device bed-*,icu-1``; ``(default)`` marks a legacy client."""
        text = f"{self.role} {','.join(self.streams)}" if self.streams else self.role
        return f"{text} (default)" if self.legacy else text

    def document(self) -> dict[str, object]:
        """The policy file's JSON object."""
        return {"role": self.role, "streams": list(self.streams)} if self.role == "device" else {"role": self.role}


def read_policy(authorized: Path, name: str) -> ClientPolicy:
    """NAME's policy from ``authorized/NAME.json``; the legacy default when there is none; ConfigError when bad."""
    path = authorized / f"{name}{POLICY_SUFFIX}"
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return ClientPolicy(name, legacy=True)
    except OSError as exc:
        raise ConfigError(f"policy file {path} cannot be read: {exc}") from exc
    try:
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"policy file {path} is not JSON: {exc}") from None
    errors = sorted(_POLICY_VALIDATOR.iter_errors(document), key=jsonschema.exceptions.relevance)
    if errors:
        problems = "; ".join(_describe(error) for error in errors[:3])
        raise ConfigError(f"policy file {path} is not valid: {problems}")
    return ClientPolicy(name, document["role"], tuple(document.get("streams", ())))


def _describe(error: jsonschema.exceptions.ValidationError) -> str:
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _write_policy(authorized: Path, policy: ClientPolicy) -> Path:
    path = authorized / f"{policy.name}{POLICY_SUFFIX}"
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(policy.document()) + "\n", encoding="utf-8")
    os.chmod(staged, 0o644)
    os.replace(staged, path)
    return path


Signature = tuple[tuple[str, int, int], ...]


def _signature(folder: Path) -> Signature:
    """Changes when a key or policy file in ``folder`` is added, removed or rewritten."""
    entries: list[tuple[str, int, int]] = []
    for path in sorted([*folder.glob(f"*{PUBLIC_SUFFIX}"), *folder.glob(f"*{POLICY_SUFFIX}")]):
        try:
            st = path.stat()
        except FileNotFoundError:  # removed while listing: the next poll sees it
            continue
        entries.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(entries)


def _authorized_keys(folder: Path) -> tuple[set[bytes], Signature]:
    """The public keys in ``folder`` and a signature that changes when a key or policy file changes."""
    clients, signature = _authorized_clients(folder)
    return set(clients), signature


def _authorized_clients(folder: Path) -> tuple[dict[bytes, ClientPolicy], Signature]:
    """Every authorized public key (Z85) with its client's policy, and the folder's signature.

    A key file that cannot be read is a ConfigError; a client whose policy file is bad is left out
    (logged), so it is refused.
    """
    if not folder.is_dir():
        raise ConfigError(f"authorized keys folder {folder} does not exist (run: ecg-keys init DIR)")
    signature = _signature(folder)
    clients: dict[bytes, ClientPolicy] = {}
    for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
        public, _ = _load(path, secret=False)
        name = path.name[: -len(PUBLIC_SUFFIX)]
        try:
            clients[public] = read_policy(folder, name)
        except ConfigError as exc:
            log.error("client %r refused: %s", name, exc)
    return clients, signature


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
    policy: ClientPolicy | None = None  # None: its policy file is bad (``policy_error`` says why)
    policy_error: str = ""

    @property
    def access(self) -> str:
        """What the client may do, as ``ecg-keys list`` shows it."""
        return self.policy.describe() if self.policy is not None else f"invalid policy ({self.policy_error})"

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


def add_client(
    keys_dir: PathLike,
    name: str,
    force: bool = False,
    *,
    role: str = "device",
    streams: Sequence[str] | None = None,
) -> Path:
    """Create the keypair ``clients/NAME``, write its policy and authorize its public key; returns the secret file.

    ``role`` is ``device`` (default), ``bridge`` or ``monitor``; ``streams`` the stream id patterns of
    a device (default: every stream, ``*``), none for the other roles.
    """
    folder = _require_initialized(keys_dir)
    _check_name(name)
    policy = make_policy(name, role, streams)
    clients = folder / CLIENTS_DIR
    authorized = folder / AUTHORIZED_DIR / f"{name}{PUBLIC_SUFFIX}"
    if not force and authorized.exists():
        raise ConfigError(f"{authorized} already exists; pass --force to replace client {name!r}")
    clients.mkdir(mode=0o700, exist_ok=True)
    public, secret = _write_keypair(clients, name, force)
    _write_policy(authorized.parent, policy)  # before the key: a new client never appears without it
    staged = authorized.with_name(f".{authorized.name}.tmp")
    shutil.copyfile(public, staged)
    os.replace(staged, authorized)
    return secret


def make_policy(name: str, role: str = "device", streams: Sequence[str] | None = None) -> ClientPolicy:
    """A policy checked against :data:`POLICY_SCHEMA` (ConfigError naming the bad pattern or role)."""
    if streams is None:
        streams = ALL_STREAMS if role == "device" else ()
    document = {"role": role, "streams": list(streams)}
    error = jsonschema.exceptions.best_match(_POLICY_VALIDATOR.iter_errors(document))
    if error is not None:
        if error.absolute_path and error.absolute_path[0] == "streams" and len(error.absolute_path) > 1:
            raise ConfigError(
                f"stream pattern {error.instance!r} is not valid: use 1-64 letters, digits, '.', '_', '-' "
                "and the wildcards * ? [ ] !"
            )
        if role != "device" and streams:
            raise ConfigError(f"only a device has stream patterns; a {role} may push no stream")
        raise ConfigError(f"client {name!r}: {error.message}")
    return ClientPolicy(name, role, tuple(streams))


def set_policy(keys_dir: PathLike, name: str, role: str = "device", streams: Sequence[str] | None = None) -> Path:
    """Replace the policy of the existing client NAME (its keys stay); returns the policy file."""
    folder = _require_initialized(keys_dir)
    _check_name(name)
    policy = make_policy(name, role, streams)
    authorized = folder / AUTHORIZED_DIR
    known = (authorized / f"{name}{PUBLIC_SUFFIX}").exists() or (
        folder / CLIENTS_DIR / f"{name}{SECRET_SUFFIX}"
    ).exists()
    if not known:
        raise ConfigError(f"client {name!r} does not exist (make it with: ecg-keys add-client {folder} {name})")
    return _write_policy(authorized, policy)


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
        try:
            policy: ClientPolicy | None = read_policy(folder / AUTHORIZED_DIR, name)
            error = ""
        except ConfigError as exc:
            policy, error = None, str(exc)
        entries.append(ClientKey(name, public.decode("ascii"), name in authorized, name in pairs, policy, error))
    return entries
