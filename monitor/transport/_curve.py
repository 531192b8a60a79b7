"""CURVE settings of one side of a socket pair (:class:`CurveConfig`) and the ZAP handler (:class:`Authenticator`).

With CURVE, traffic is encrypted and a server only accepts clients whose public key is in its
``authorized/`` folder (see :mod:`monitor.transport._keystore` for the KEYS folder); a client only
talks to the server whose public key it was given. The check runs in a ZAP handler (pyzmq's
:class:`zmq.auth.thread.ThreadAuthenticator`), one per :class:`zmq.Context`, wrapped here by
:class:`Authenticator`.

Servers read ``authorized/`` (keys and policies) when their :class:`Authenticator` starts and
again on :meth:`Authenticator.reload` (or :meth:`~Authenticator.reload_if_changed`, or
:meth:`~Authenticator.reload_if_due`, paced by a clock). The handshake accepts the keys in the
current set and refuses others (logged with the key's fingerprint); an accepted connection's
messages carry the ZAP ``User-Id`` ``NAME:PUBLICKEY``, which the server checks per message with
:attr:`Authenticator.authorizer` (:class:`~monitor.transport.Authorizer`), so revoking a key also
stops what its established connections send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq
import zmq.utils.z85
from zmq.auth.thread import ThreadAuthenticator

from monitor.errors import ConfigError
from monitor.transport._authz import Authorizer
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


class _ZapHandler(ThreadAuthenticator):
    """pyzmq's ZAP thread, asking an :class:`Authorizer` about each CURVE key and naming accepted ones."""

    def __init__(self, context: zmq.Context[Any], authorizer: Authorizer) -> None:
        super().__init__(context, log=logging.getLogger("monitor.transport.zap"))
        self.authorizer = authorizer
        self.peer = ""
        for domain in ("*", ZAP_DOMAIN):  # "*": any socket without a domain; ZAP_DOMAIN: set by secure_server
            self.configure_curve_callback(domain=domain, credentials_provider=self)

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        # frame 3 is the peer's address: kept for the log line of a refused key
        self.peer = msg[3].decode("utf-8", "replace") if len(msg) > 3 else ""
        await super().handle_zap_message(msg)

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials check pyzmq calls with the client's Z85 public key."""
        return self.authorizer.accepts_handshake(key, self.peer)

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.authorizer.user_id_for(zmq.utils.z85.encode(client_public_key))


class Authenticator:
    """The ZAP handler of one zmq context: accepts CURVE clients whose key is in ``authorized/``.

    Exactly one may run per context (libzmq has one ZAP endpoint per context), and every CURVE
    server socket of that context is checked by it, so a process binding several secured sockets
    on one context shares one Authenticator. Use it as a context manager, or call :meth:`start`
    and :meth:`stop`; stop it before the context is destroyed, and close the secured sockets
    first (:func:`~monitor.transport.secure_server` makes them refuse every client while no
    handler runs).

    :attr:`authorizer` holds the key set and the policies: the handshake asks it, and so should
    the server for each message (:meth:`Authorizer.check_push` with the message's ``User-Id``).
    ``clock`` and ``reload_interval_s`` pace :meth:`reload_if_due`.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        config: CurveConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        reload_interval_s: float = 2.0,
    ) -> None:
        if config.authorized_dir is None:
            raise ConfigError("Authenticator needs a server CurveConfig (with authorized_dir)")
        self.context = context
        self.authorized_dir = config.authorized_dir
        self.authorizer = Authorizer(config.authorized_dir, clock=clock, reload_interval_s=reload_interval_s)
        self._thread: _ZapHandler | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def keys(self) -> int:
        """How many client keys are accepted now."""
        return self.authorizer.keys

    def start(self) -> Authenticator:
        """Start the ZAP thread and load the authorized keys; raises (and leaves nothing running) on failure."""
        if self._thread is not None:
            raise ConfigError("Authenticator already started")
        self.authorizer.reload()
        thread = _ZapHandler(self.context, self.authorizer)
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
        return self

    def reload(self) -> int:
        """Read ``authorized/`` again (added and revoked keys, policies); returns how many keys are now accepted."""
        if self._thread is None:
            raise ConfigError("Authenticator is not running; start it first")
        return self.authorizer.reload()

    def reload_if_changed(self) -> bool:
        """:meth:`reload` when a key or policy file was added, removed or rewritten; cheap enough to poll."""
        if self._thread is None:
            raise ConfigError("Authenticator is not running; start it first")
        return self.authorizer.reload_if_changed()

    def reload_if_due(self) -> bool:
        """:meth:`reload_if_changed` at most every ``reload_interval_s`` (cheap enough to call each loop);
        a broken key file is logged and the previous key set stays."""
        return self._thread is not None and self.authorizer.reload_if_due()

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
