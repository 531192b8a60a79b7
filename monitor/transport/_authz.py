"""Authorization: what an authenticated client may do, checked on every message (:class:`Authorizer`).

CURVE authenticates a client once, during the handshake. The ZAP handler (the
:class:`~monitor.transport.Authenticator`) then gives the connection a ``User-Id``, which libzmq
attaches to every message received on it: here ``NAME:PUBLICKEY`` (the client's name and its Z85
public key, see :func:`user_id`). A server reads it per message (``frame.get("User-Id")`` on frames
received with ``copy=False``) and asks :meth:`Authorizer.check_push` whether that key may push that
stream, against the key set as it is now. So a key revoked after its connection was established is
refused on the first message after the next reload, and a key reissued under the same name does
not let the old key's connection through (the public key, not only the name, must still be
authorized).

Refusals are counted by reason (:attr:`Authorizer.refusals`) and logged with the client's name and
key fingerprint (:func:`fingerprint`) once per key and reason; refused handshakes (a key not in
``authorized/``) are logged once per key with its fingerprint, at most
:attr:`Authorizer.max_logged_per_minute` new keys a minute, so a flood of strangers cannot flood
the log.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import zmq
import zmq.utils.z85

from monitor.errors import ConfigError
from monitor.transport._keystore import ClientPolicy, Signature, _authorized_clients, _signature

__all__ = ["REFUSAL_REASONS", "Authorizer", "fingerprint", "parse_user_id", "sender_of", "user_id"]

log = logging.getLogger(__name__)

# why check_push refuses a message, the counter keys
REFUSAL_REASONS = ("unauthenticated", "key_revoked", "role", "stream_not_allowed")
_KEY_LENGTH = 40  # a CURVE public key in Z85
_MAX_REMEMBERED = 4096  # (key, reason) pairs and refused keys remembered for log-once


def fingerprint(public_key: bytes | str) -> str:
    """``SHA256:`` and 16 hex digits of the SHA-256 of a CURVE public key (Z85 text or the 32 raw bytes)."""
    raw = public_key.encode("ascii") if isinstance(public_key, str) else public_key
    if len(raw) == _KEY_LENGTH:
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):  # not Z85: hash the text
            raw = zmq.utils.z85.decode(raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()[:16]


def user_id(name: str, public_key: bytes | str) -> str:
    """The ZAP ``User-Id`` of a client: ``NAME:PUBLICKEY`` (names never hold ``:``)."""
    key = public_key.decode("ascii") if isinstance(public_key, bytes) else public_key
    return f"{name}:{key}"


def sender_of(frame: zmq.Frame) -> str | None:
    """The ZAP ``User-Id`` of a received frame (``recv_multipart(copy=False)``); None when it has none
    (a socket without CURVE, or a libzmq that gives none)."""
    try:
        value = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return value if isinstance(value, str) and value else None


def parse_user_id(value: str | None) -> tuple[str, str] | None:
    """(name, Z85 public key) of a ``User-Id`` made by :func:`user_id`; None for anything else."""
    if not value:
        return None
    name, sep, key = value.partition(":")
    if not sep or not name or len(key) != _KEY_LENGTH:
        return None
    return name, key


class Authorizer:
    """The authorized clients of ``authorized/`` with their policies, and the checks made with them.

    Thread-safe: the ZAP thread asks :meth:`accepts_handshake` and :meth:`user_id_for`, the server's
    loop asks :meth:`check_push` and polls :meth:`reload_if_due`; a reload swaps the whole key set
    at once. ``clock`` (monotonic seconds) paces :meth:`reload_if_due` and the handshake log limit.
    """

    max_logged_per_minute = 10

    def __init__(
        self,
        authorized_dir: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        reload_interval_s: float = 2.0,
    ) -> None:
        if reload_interval_s <= 0:
            raise ConfigError(f"reload_interval_s must be positive, got {reload_interval_s}")
        self.authorized_dir = Path(authorized_dir)
        self.clock = clock
        self.reload_interval_s = reload_interval_s
        self.refusals: Counter[str] = Counter()
        self.handshakes_refused = 0
        self._lock = threading.Lock()
        self._clients: Mapping[str, ClientPolicy] = {}
        self._signature: Signature | None = None
        self._last_poll = clock()
        self._logged: set[tuple[str, str]] = set()
        self._strangers: set[str] = set()
        self._log_window = (self._last_poll, 0)  # (start, new keys logged in that minute)
        self.reload()

    # ------------------------------------------------------------------ the key set

    @property
    def keys(self) -> int:
        """How many client keys are accepted now."""
        return len(self._clients)

    def reload(self) -> int:
        """Read ``authorized/`` again (keys and policies); returns how many keys are accepted now."""
        clients, signature = _authorized_clients(self.authorized_dir)
        table = {key.decode("ascii"): policy for key, policy in clients.items()}
        with self._lock:
            self._clients = table
            self._signature = signature
        if table:
            log.info("accepting %d client key(s) from %s", len(table), self.authorized_dir)
        else:
            log.warning("no client keys in %s: every CURVE client will be refused", self.authorized_dir)
        return len(table)

    def reload_if_changed(self) -> bool:
        """:meth:`reload` when a key or policy file was added, removed or rewritten; cheap enough to poll."""
        if not self.authorized_dir.is_dir():
            raise ConfigError(f"authorized keys folder {self.authorized_dir} does not exist")
        if _signature(self.authorized_dir) == self._signature:
            return False
        self.reload()
        return True

    def reload_if_due(self) -> bool:
        """:meth:`reload_if_changed` once ``reload_interval_s`` has passed since the last look; a failed
        reload (a broken key file) is logged and keeps the current key set."""
        now = self.clock()
        if now - self._last_poll < self.reload_interval_s:
            return False
        self._last_poll = now
        try:
            return self.reload_if_changed()
        except ConfigError as exc:
            log.error("authorized keys not reloaded, the previous set stays: %s", exc)
            return False

    def client(self, public_key: bytes | str) -> ClientPolicy | None:
        """The policy of an authorized Z85 public key; None when the key is not authorized (now)."""
        key = public_key.decode("ascii", "replace") if isinstance(public_key, bytes) else public_key
        return self._clients.get(key)

    # ------------------------------------------------------------------ the ZAP handler's questions

    def accepts_handshake(self, public_key: bytes, peer: str = "") -> bool:
        """True when the Z85 ``public_key`` is authorized; a refused key is logged once, with its fingerprint."""
        if self.client(public_key) is not None:
            return True
        key = public_key.decode("ascii", "replace")
        with self._lock:
            self.handshakes_refused += 1
            if key in self._strangers or not self._may_log_stranger():
                return False
            if len(self._strangers) < _MAX_REMEMBERED:
                self._strangers.add(key)
        where = f" from {peer}" if peer else ""
        log.warning(
            "refused CURVE handshake%s: key %s (%s) is not in %s", where, fingerprint(key), key, self.authorized_dir
        )
        return False

    def _may_log_stranger(self) -> bool:
        start, count = self._log_window
        now = self.clock()
        if now - start >= 60.0:
            start, count = now, 0
        if count >= self.max_logged_per_minute:
            self._log_window = (start, count)
            return False
        self._log_window = (start, count + 1)
        return True

    def user_id_for(self, public_key: bytes) -> str:
        """The ``User-Id`` the ZAP handler gives an accepted Z85 ``public_key``: ``NAME:PUBLICKEY``."""
        policy = self.client(public_key)
        return user_id(policy.name if policy is not None else "unknown", public_key)

    # ------------------------------------------------------------------ per message

    def check_push(self, user: str | None, stream: str | None) -> str | None:
        """None when the client with ``User-Id`` ``user`` may push samples of ``stream``; else the reason.

        Reasons (:data:`REFUSAL_REASONS`): ``unauthenticated`` (no or a foreign ``User-Id``),
        ``key_revoked`` (the key is no longer in ``authorized/``, or its policy is unreadable),
        ``role`` (not a device), ``stream_not_allowed`` (``stream`` matches none of its patterns).
        ``stream`` None (a header too broken to name one) checks the key and the role only.
        Each refusal is counted in :attr:`refusals`, and logged once per key and reason.
        """
        parsed = parse_user_id(user)
        policy = self._clients.get(parsed[1]) if parsed is not None else None
        if policy is not None and policy.role == "device" and (stream is None or policy.may_push(stream)):
            return None
        if parsed is None:
            reason = "unauthenticated"
        elif policy is None:
            reason = "key_revoked"
        elif policy.role != "device":
            reason = "role"
        else:
            reason = "stream_not_allowed"
        self._refused(parsed, policy, reason, stream)
        return reason

    def check_role(self, user: str | None, *roles: str) -> str | None:
        """None when the client with ``User-Id`` ``user`` has one of ``roles`` (``"bridge", "monitor"`` to
        subscribe to the alert bus, ``"monitor"`` to use an engine); else the reason, counted and logged
        like :meth:`check_push`'s. A client without a policy file predates roles: it passes every check."""
        parsed = parse_user_id(user)
        policy = self._clients.get(parsed[1]) if parsed is not None else None
        if policy is not None and (policy.legacy or policy.role in roles):
            return None
        reason = "unauthenticated" if parsed is None else "key_revoked" if policy is None else "role"
        self._refused(parsed, policy, reason, None, action=f"a {' or '.join(roles)}'s messages")
        return reason

    def _refused(
        self,
        parsed: tuple[str, str] | None,
        policy: ClientPolicy | None,
        reason: str,
        stream: str | None,
        action: str = "samples",
    ) -> None:
        key = parsed[1] if parsed is not None else ""
        with self._lock:
            self.refusals[reason] += 1
            if (key, reason) in self._logged or len(self._logged) >= _MAX_REMEMBERED:
                return
            self._logged.add((key, reason))
        if parsed is None:
            log.warning("refused a message without a client User-Id (is the socket a CURVE server?)")
            return
        who = f"client {parsed[0]!r} (key {fingerprint(key)})"
        if reason == "key_revoked":
            why = "its key is no longer authorized (revoked)"
        elif reason == "role" and policy is not None:
            why = f"a {policy.role} may not push samples" if action == "samples" else f"it is a {policy.role}"
        else:
            patterns = ",".join(policy.streams) if policy is not None else ""
            why = f"stream {stream!r} matches none of its patterns ({patterns})"
        log.warning("refused %s from %s: %s; further refusals of this kind are only counted", action, who, why)

    def snapshot(self) -> dict[str, object]:
        """Counters for a status report: accepted keys, refused handshakes, refused messages by reason."""
        with self._lock:
            return {
                "keys": len(self._clients),
                "handshakes_refused": self.handshakes_refused,
                "refused": dict(self.refusals),
            }
