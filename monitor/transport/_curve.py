"""CURVE settings of one side of a socket pair (:class:`CurveConfig`) and the ZAP handler (:class:`Authenticator`).

With CURVE, traffic is encrypted and a server only accepts clients whose public key is in its
``authorized/`` folder (see :mod:`monitor.transport._keystore` for the KEYS folder); a client only
talks to the server whose public key it was given. The check runs in a ZAP handler (pyzmq's
:class:`zmq.auth.thread.ThreadAuthenticator`), one per :class:`zmq.Context`, wrapped here by
:class:`Authenticator`.

Servers read ``authorized/`` when their :class:`Authenticator` starts and again on
:meth:`Authenticator.reload` (or :meth:`Authenticator.reload_if_changed`). CURVE checks a key
during the handshake only: revoking a key refuses new connections, while a connection already
established stays up until it is closed or reconnects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from monitor.errors import ConfigError
from monitor.transport._keystore import (
    AUTHORIZED_DIR,
    CLIENTS_DIR,
    SECRET_SUFFIX,
    SERVER_PUBLIC,
    SERVER_SECRET,
    PathLike,
    _authorized_keys,
    _check_name,
    _keys_dir,
    _load,
)

__all__ = ["ZAP_DOMAIN", "Authenticator", "CurveConfig"]

log = logging.getLogger(__name__)

ZAP_DOMAIN = "ecg-monitor"


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


class Authenticator:
    """The ZAP handler of one zmq context: accepts CURVE clients whose key is in ``authorized/``.

    Exactly one may run per context (libzmq has one ZAP endpoint per context), and every CURVE
    server socket of that context is checked by it, so a process binding several secured sockets
    on one context shares one Authenticator. Use it as a context manager, or call :meth:`start`
    and :meth:`stop`; stop it before the context is destroyed, and close the secured sockets
    first (:func:`~monitor.transport.secure_server` makes them refuse every client while no
    handler runs).
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
