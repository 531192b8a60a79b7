"""ZeroMQ transport security: CURVE keys, the authenticator, secured bind and connect.

Every socket pair of the project has a binding side (the server) and connecting sides (the clients):

=========  ================================  =====================================
pair       server (binds)                    clients (connect)
=========  ================================  =====================================
ingest     ``ecg-monitor`` PULL              devices, ``ecg-replay`` PUSH
alerts     ``ecg-monitor`` XPUB              ``ecg-alerts`` bridges SUB
snapshot   ``ecg-monitor`` ROUTER            ``ecg-alerts`` bridges DEALER
engine     ``ecg-engine`` ROUTER             ``ecg-monitor`` DEALER
=========  ================================  =====================================

* ``_keystore``: the KEYS folder (layout, key and policy file formats, revocation) and the functions
  behind ``ecg-keys``: :func:`init_keys`, :func:`add_client`, :func:`set_policy`,
  :func:`revoke_client`, :func:`list_clients`; :class:`ClientPolicy` (a client's role and stream
  patterns).
* ``_authz``: :class:`Authorizer`, the key set with its policies: the handshake check, the ZAP
  ``User-Id`` (:func:`user_id`), and the per-message :meth:`Authorizer.check_push`.
* ``_curve``: :class:`CurveConfig` (where one side finds its keys) and :class:`Authenticator` (the
  ZAP handler of a context, which accepts the keys in ``authorized/`` and names each connection).
* ``_sockets``: :func:`secure_bind`, :func:`secure_connect` and the loopback guard
  (:func:`check_bind`), and sockets as context managers (:func:`open_socket`, :func:`bound_socket`,
  :func:`connected_socket`).
"""

from monitor.transport._authz import (
    REFUSAL_REASONS,
    Authorizer,
    fingerprint,
    parse_user_id,
    sender_of,
    user_id,
)
from monitor.transport._curve import ZAP_DOMAIN, Authenticator, CurveConfig
from monitor.transport._keystore import (
    AUTHORIZED_DIR,
    CLIENTS_DIR,
    POLICY_SCHEMA,
    POLICY_SUFFIX,
    PUBLIC_SUFFIX,
    ROLES,
    SECRET_SUFFIX,
    SERVER_PUBLIC,
    SERVER_SECRET,
    ClientKey,
    ClientPolicy,
    add_client,
    init_keys,
    list_clients,
    make_policy,
    read_policy,
    revoke_client,
    server_public_key,
    set_policy,
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
    "POLICY_SCHEMA",
    "POLICY_SUFFIX",
    "PUBLIC_SUFFIX",
    "REFUSAL_REASONS",
    "ROLES",
    "SECRET_SUFFIX",
    "SERVER_PUBLIC",
    "SERVER_SECRET",
    "ZAP_DOMAIN",
    "Authenticator",
    "Authorizer",
    "ClientKey",
    "ClientPolicy",
    "CurveConfig",
    "add_client",
    "bound_socket",
    "check_bind",
    "client_from_flags",
    "connected_socket",
    "fingerprint",
    "init_keys",
    "is_loopback",
    "last_endpoint",
    "list_clients",
    "make_policy",
    "open_socket",
    "parse_user_id",
    "read_policy",
    "revoke_client",
    "secure_bind",
    "secure_client",
    "secure_connect",
    "secure_server",
    "sender_of",
    "server_public_key",
    "set_policy",
    "split_endpoint",
    "user_id",
]
