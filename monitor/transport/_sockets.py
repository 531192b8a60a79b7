"""Secured sockets: CURVE on bind and connect, the loopback guard, and sockets as context managers.

Every socket pair of the project has a binding side (the server) and connecting sides (the
clients). :func:`secure_bind` and :func:`secure_connect` make them CURVE servers and clients when
given a :class:`~monitor.transport.CurveConfig`, and plain sockets otherwise.

Without keys, :func:`check_bind` logs a warning when a socket binds a TCP endpoint that other
hosts can reach; loopback addresses, ``ipc://`` and ``inproc://`` are quiet.

:func:`open_socket`, :func:`bound_socket` and :func:`connected_socket` are context managers in
pyzmq's style (``with open_socket(ctx, zmq.PULL) as sock:``): the socket is closed with the given
linger (0 by default: unsent messages are dropped, so closing never blocks) when the block ends,
whether normally or by an exception.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import zmq

from monitor.errors import ConfigError
from monitor.transport._curve import ZAP_DOMAIN, Authenticator, CurveConfig
from monitor.transport._keystore import PathLike

__all__ = [
    "bound_socket",
    "check_bind",
    "client_from_flags",
    "connected_socket",
    "is_loopback",
    "last_endpoint",
    "open_socket",
    "secure_bind",
    "secure_client",
    "secure_connect",
    "secure_server",
    "split_endpoint",
]

log = logging.getLogger(__name__)

_LOCAL_TRANSPORTS = frozenset({"ipc", "inproc"})
_LOOPBACK_NAMES = frozenset({"localhost", "lo", "lo0"})

_S = TypeVar("_S", bound="zmq.Socket[Any]")


# --------------------------------------------------------------------------- CURVE on one socket


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
    return last_endpoint(sock)


def secure_connect(sock: zmq.Socket[Any], endpoint: str, config: CurveConfig | None = None) -> None:
    """Connect ``sock`` to ``endpoint``, as a CURVE client when ``config`` is given."""
    if config is not None:
        secure_client(sock, config)
    sock.connect(endpoint)


# --------------------------------------------------------------------------- sockets as context managers


@contextmanager
def open_socket(context: zmq.Context[_S], kind: int, *, linger: int = 0) -> Iterator[_S]:
    """A new socket of ``kind`` (``zmq.PULL``, ...) with ``linger`` milliseconds, closed when the block ends."""
    sock = context.socket(kind)
    try:
        sock.linger = linger
        yield sock
    finally:
        sock.close(linger=linger)


@contextmanager
def bound_socket(
    context: zmq.Context[_S],
    kind: int,
    endpoint: str,
    config: CurveConfig | None = None,
    authenticator: Authenticator | None = None,
    *,
    linger: int = 0,
) -> Iterator[_S]:
    """:func:`open_socket` bound with :func:`secure_bind`; :func:`last_endpoint` tells the port it got."""
    with open_socket(context, kind, linger=linger) as sock:
        secure_bind(sock, endpoint, config, authenticator)
        yield sock


@contextmanager
def connected_socket(
    context: zmq.Context[_S],
    kind: int,
    endpoint: str,
    config: CurveConfig | None = None,
    *,
    linger: int = 0,
) -> Iterator[_S]:
    """:func:`open_socket` connected with :func:`secure_connect`."""
    with open_socket(context, kind, linger=linger) as sock:
        secure_connect(sock, endpoint, config)
        yield sock


# --------------------------------------------------------------------------- endpoints and the loopback guard


def last_endpoint(sock: zmq.Socket[Any]) -> str:
    """The endpoint ``sock`` last bound or connected to, with a wildcard port resolved; "" when none."""
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """(transport in lower case, address) of ``transport://address``; a :class:`ConfigError` otherwise."""
    transport, sep, address = endpoint.partition("://")
    if not sep or not transport or not address:
        raise ConfigError(f"endpoint {endpoint!r} is not of the form transport://address")
    return transport.lower(), address


def is_loopback(endpoint: str) -> bool:
    """True when only this host can reach ``endpoint``: ipc://, inproc://, or tcp on 127.0.0.0/8, ::1, localhost."""
    transport, address = split_endpoint(endpoint)
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
