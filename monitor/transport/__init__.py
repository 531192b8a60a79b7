"""ZeroMQ transport security: CURVE keys, the authenticator, secured bind and connect.

Every socket pair of the project has a binding side (the server) and connecting sides (the clients):

=========  ================================  =====================================
pair       server (binds)                    clients (connect)
=========  ================================  =====================================
ingest     ``ecg-monitor`` PULL              devices, ``ecg-replay`` PUSH
alerts     ``ecg-monitor`` XPUB              ``ecg-alerts`` bridges SUB
engine     ``ecg-engine`` ROUTER             ``ecg-monitor`` DEALER
=========  ================================  =====================================

* ``_keystore``: the KEYS folder (layout, file format, revocation) and the functions behind
  ``ecg-keys``: :func:`init_keys`, :func:`add_client`, :func:`revoke_client`, :func:`list_clients`.
* ``_curve``: :class:`CurveConfig` (where one side finds its keys) and :class:`Authenticator` (the
  ZAP handler of a context, which accepts the keys in ``authorized/``).
* ``_sockets``: :func:`secure_bind`, :func:`secure_connect` and the loopback guard
  (:func:`check_bind`), and sockets as context managers (:func:`open_socket`, :func:`bound_socket`,
  :func:`connected_socket`).
"""

from monitor.transport._curve import ZAP_DOMAIN, Authenticator, CurveConfig
from monitor.transport._keystore import (
    AUTHORIZED_DIR,
    CLIENTS_DIR,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    SERVER_PUBLIC,
    SERVER_SECRET,
    ClientKey,
    add_client,
    init_keys,
    list_clients,
    revoke_client,
    server_public_key,
)
from monitor.transport._sockets import (
    bound_socket,
    check_bind,
    client_from_flags,
    connected_socket,
    is_loopback,
    last_endpoint,
    open_socket,
    secure_bind,
    secure_client,
    secure_connect,
    secure_server,
    split_endpoint,
)

__all__ = [
    "AUTHORIZED_DIR",
    "CLIENTS_DIR",
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "SERVER_PUBLIC",
    "SERVER_SECRET",
    "ZAP_DOMAIN",
    "Authenticator",
    "ClientKey",
    "CurveConfig",
    "add_client",
    "bound_socket",
    "check_bind",
    "client_from_flags",
    "connected_socket",
    "init_keys",
    "is_loopback",
    "last_endpoint",
    "list_clients",
    "open_socket",
    "revoke_client",
    "secure_bind",
    "secure_client",
    "secure_connect",
    "secure_server",
    "server_public_key",
    "split_endpoint",
]
