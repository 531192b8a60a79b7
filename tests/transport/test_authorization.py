"""Authorization of CURVE clients: roles and stream patterns kept with the keys, the ZAP ``User-Id`` on
every message, the per-message push check (revocation of established connections) and the logs of
refused peers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth

from monitor.cli._keys import main
from monitor.errors import ConfigError
from monitor.testing import FakeClock
from monitor.transport import (
    REFUSAL_REASONS,
    Authenticator,
    Authorizer,
    ClientPolicy,
    CurveConfig,
    add_client,
    fingerprint,
    init_keys,
    list_clients,
    open_socket,
    parse_user_id,
    read_policy,
    revoke_client,
    secure_client,
    secure_server,
    sender_of,
    set_policy,
    user_id,
)

Socket = zmq.Socket[bytes]
Context = zmq.Context[Socket]

TIMEOUT_MS = 2000


def public_of(keys: Path, name: str) -> str:
    return zmq.auth.load_certificate(keys / "clients" / f"{name}.key_secret")[0].decode()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    init_keys(folder)
    add_client(folder, "bed-1", streams=["bed-1", "bed-1-*"])
    add_client(folder, "ward-a", streams=["bed-*"])
    add_client(folder, "bridge", role="bridge")
    add_client(folder, "mon", role="monitor")
    return folder


@pytest.fixture
def authorizer(keys: Path, clock: FakeClock) -> Authorizer:
    return Authorizer(keys / "authorized", clock=clock, reload_interval_s=2.0)


# --------------------------------------------------------------------------- the key store


def test_roles_and_patterns_are_stored_beside_the_keys_and_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "keys"
    assert main(["init", str(folder)]) == 0
    assert main(["add-client", "--streams", "bed-7", "--streams", "bed-7b", str(folder), "bed-7"]) == 0
    assert main(["add-client", str(folder), "ward", "--streams", "bed-*"]) == 0
    assert main(["add-client", str(folder), "alerts", "--role", "bridge"]) == 0
    assert main(["add-client", str(folder), "monitor-a", "--role", "monitor"]) == 0
    assert main(["add-client", str(folder), "any"]) == 0
    authorized = folder / "authorized"
    assert json.loads((authorized / "bed-7.json").read_text()) == {"role": "device", "streams": ["bed-7", "bed-7b"]}
    assert json.loads((authorized / "alerts.json").read_text()) == {"role": "bridge"}
    assert json.loads((authorized / "any.json").read_text()) == {"role": "device", "streams": ["*"]}

    capsys.readouterr()
    assert main(["list", str(folder)]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["bed-7"][:3] == ["authorized", "device", "bed-7,bed-7b"]
    assert rows["ward"][:3] == ["authorized", "device", "bed-*"]
    assert rows["alerts"][:2] == ["authorized", "bridge"]
    assert rows["monitor-a"][:2] == ["authorized", "monitor"]
    assert rows["any"][:3] == ["authorized", "device", "*"]

    # the policy changes without new keys; revocation keeps it for the listing
    secret = (folder / "clients" / "ward.key_secret").read_text()
    assert main(["policy", str(folder), "ward", "--streams", "icu-?"]) == 0
    assert (folder / "clients" / "ward.key_secret").read_text() == secret
    assert main(["revoke", str(folder), "ward"]) == 0
    (entry,) = [c for c in list_clients(folder) if c.name == "ward"]
    assert (entry.status, entry.access) == ("revoked", "device icu-?")


def test_a_client_without_a_policy_file_is_a_device_of_every_stream(keys: Path, authorizer: Authorizer) -> None:
    (keys / "authorized" / "ward-a.json").unlink()  # as in a keys folder made before policies
    policy = read_policy(keys / "authorized", "ward-a")
    assert policy == ClientPolicy("ward-a", "device", ("*",), legacy=True)
    assert policy.describe() == "device * (default)"
    authorizer.reload()
    assert authorizer.check_push(user_id("ward-a", public_of(keys, "ward-a")), "anything-1") is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add-client", "{keys}", "b2", "--role", "bridge", "--streams", "bed-*"], "only a device"),
        (["add-client", "{keys}", "d2", "--streams", "bed 1"], "not valid"),
        (["add-client", "{keys}", "d2", "--streams", "x" * 65], "not valid"),
        (["policy", "{keys}", "nobody", "--role", "bridge"], "does not exist"),
    ],
)
def test_bad_policies_are_refused_by_the_cli(
    keys: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([arg.replace("{keys}", str(keys)) for arg in argv]) == 2
    assert message in capsys.readouterr().err
    assert not (keys / "authorized" / "d2.key").exists() and not (keys / "authorized" / "b2.key").exists()


def test_cli_rejects_an_unknown_role(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["add-client", str(keys), "x", "--role", "admin"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    ['{"role": "device", "stream": ["*"]}', '{"role": "root"}', "not json", '{"role": "device", "streams": []}'],
)
def test_a_bad_policy_file_refuses_its_client(
    keys: Path, authorizer: Authorizer, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    (keys / "authorized" / "ward-a.json").write_text(text)
    with pytest.raises(ConfigError, match=r"ward-a\.json"):
        read_policy(keys / "authorized", "ward-a")
    with caplog.at_level(logging.ERROR, logger="monitor.transport"):
        authorizer.reload()
    assert "client 'ward-a' refused" in caplog.text
    public = public_of(keys, "ward-a")
    assert authorizer.client(public) is None and not authorizer.accepts_handshake(public.encode())
    (entry,) = [c for c in list_clients(keys) if c.name == "ward-a"]
    assert entry.policy is None and entry.access.startswith("invalid policy")


# --------------------------------------------------------------------------- the per-message check


def test_check_push_by_role_pattern_and_key(keys: Path, authorizer: Authorizer) -> None:
    bed = user_id("bed-1", public_of(keys, "bed-1"))
    ward = user_id("ward-a", public_of(keys, "ward-a"))
    assert authorizer.check_push(bed, "bed-1") is None
    assert authorizer.check_push(bed, "bed-1-aux") is None
    assert authorizer.check_push(bed, "bed-99") == "stream_not_allowed"
    assert authorizer.check_push(bed, "BED-1") == "stream_not_allowed"  # patterns match case-sensitively
    assert authorizer.check_push(ward, "bed-99") is None
    assert authorizer.check_push(ward, "icu-1") == "stream_not_allowed"
    assert authorizer.check_push(ward, None) is None  # no stream named: key and role only
    assert authorizer.check_push(user_id("bridge", public_of(keys, "bridge")), "bed-1") == "role"
    assert authorizer.check_push(user_id("mon", public_of(keys, "mon")), None) == "role"
    assert authorizer.check_push(None, "bed-1") == "unauthenticated"
    assert authorizer.check_push("anonymous", "bed-1") == "unauthenticated"
    stranger = zmq.curve_keypair()[0].decode()
    assert authorizer.check_push(user_id("bed-1", stranger), "bed-1") == "key_revoked"  # the name alone is not enough
    assert authorizer.refusals == {"stream_not_allowed": 3, "role": 2, "unauthenticated": 2, "key_revoked": 1}
    assert set(authorizer.refusals) <= set(REFUSAL_REASONS)
    assert authorizer.snapshot()["refused"] == dict(authorizer.refusals)


def test_check_role_for_the_bus_and_the_engine(keys: Path, authorizer: Authorizer, clock: FakeClock) -> None:
    bridge = user_id("bridge", public_of(keys, "bridge"))
    mon = user_id("mon", public_of(keys, "mon"))
    bed = user_id("bed-1", public_of(keys, "bed-1"))
    assert authorizer.check_role(bridge, "bridge", "monitor") is None
    assert authorizer.check_role(mon, "monitor") is None
    assert authorizer.check_role(bridge, "monitor") == "role"
    assert authorizer.check_role(bed, "bridge", "monitor") == "role"
    assert authorizer.check_role(None, "monitor") == "unauthenticated"
    (keys / "authorized" / "bed-1.json").unlink()  # no policy: predates roles, passes every check
    clock.advance(2.0)
    assert authorizer.reload_if_due()
    assert authorizer.check_role(bed, "monitor") is None
    revoke_client(keys, "mon")
    clock.advance(2.0)
    assert authorizer.reload_if_due()
    assert authorizer.check_role(mon, "monitor") == "key_revoked"


def test_revocation_applies_after_the_reload_interval(keys: Path, authorizer: Authorizer, clock: FakeClock) -> None:
    bed = user_id("bed-1", public_of(keys, "bed-1"))
    revoke_client(keys, "bed-1")
    assert not authorizer.reload_if_due()  # not due yet: the old set still holds
    assert authorizer.check_push(bed, "bed-1") is None
    clock.advance(2.0)
    assert authorizer.reload_if_due()
    assert authorizer.check_push(bed, "bed-1") == "key_revoked"

    set_policy(keys, "ward-a", streams=["icu-*"])  # a policy change is picked up the same way
    ward = user_id("ward-a", public_of(keys, "ward-a"))
    clock.advance(2.0)
    assert authorizer.reload_if_due()
    assert authorizer.check_push(ward, "bed-3") == "stream_not_allowed"
    assert authorizer.check_push(ward, "icu-3") is None


def test_a_broken_key_file_keeps_the_previous_key_set(
    keys: Path, authorizer: Authorizer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    (keys / "authorized" / "broken.key").write_text("no key here\n")
    clock.advance(5.0)
    with caplog.at_level(logging.ERROR, logger="monitor.transport"):
        assert not authorizer.reload_if_due()
    assert "previous set stays" in caplog.text
    assert authorizer.check_push(user_id("bed-1", public_of(keys, "bed-1")), "bed-1") is None


def test_refusals_are_logged_once_per_key_and_reason_with_name_and_fingerprint(
    keys: Path, authorizer: Authorizer, caplog: pytest.LogCaptureFixture
) -> None:
    public = public_of(keys, "bed-1")
    bed = user_id("bed-1", public)
    with caplog.at_level(logging.WARNING, logger="monitor.transport"):
        for stream in ("bed-99", "bed-98", "bed-99"):
            authorizer.check_push(bed, stream)
        authorizer.check_push(user_id("bridge", public_of(keys, "bridge")), "bed-1")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "'bed-1'" in lines[0] and fingerprint(public) in lines[0] and "'bed-99'" in lines[0]
    assert "'bridge'" in lines[1] and "a bridge may not push" in lines[1]
    assert authorizer.refusals["stream_not_allowed"] == 3


def test_sender_of_a_frame_without_curve_is_none(ctx: Context) -> None:
    with open_socket(ctx, zmq.PULL) as pull, open_socket(ctx, zmq.PUSH) as push:
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        push.send(b"x")
        assert pull.poll(TIMEOUT_MS, zmq.POLLIN)
        assert sender_of(pull.recv(copy=False)) is None


def test_fingerprint_and_user_id() -> None:
    public, _ = zmq.curve_keypair()
    assert fingerprint(public) == fingerprint(public.decode()) == fingerprint(zmq.utils.z85.decode(public))
    assert fingerprint(public).startswith("SHA256:") and len(fingerprint(public)) == 7 + 16
    assert parse_user_id(user_id("bed-1", public)) == ("bed-1", public.decode())
    for bad in (None, "", "bed-1", "bed-1:short", ":" + public.decode()):
        assert parse_user_id(bad) is None


def test_handshake_refusals_are_logged_at_most_ten_new_keys_a_minute(
    keys: Path, authorizer: Authorizer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    strangers = [zmq.curve_keypair()[0] for _ in range(12)]
    with caplog.at_level(logging.WARNING, logger="monitor.transport"):
        for key in strangers + strangers[:3]:
            assert not authorizer.accepts_handshake(key, "tcp://10.0.0.9:4000")
        clock.advance(60.0)
        assert not authorizer.accepts_handshake(strangers[11])
    assert authorizer.handshakes_refused == 16
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 11
    assert fingerprint(strangers[0]) in logged[0] and "from tcp://10.0.0.9:4000" in logged[0]
    assert fingerprint(strangers[11]) in logged[10]


# --------------------------------------------------------------------------- through real sockets


class Pair:
    """A CURVE PULL server on a random loopback port with its Authenticator, and PUSH clients."""

    def __init__(self, ctx: Context, client_ctx: Context, keys: Path, clock: FakeClock) -> None:
        self.keys, self.client_ctx = keys, client_ctx
        self.auth = Authenticator(ctx, CurveConfig.server(keys), clock=clock, reload_interval_s=1.0).start()
        self._open: list[Socket] = []
        self.pull = self._socket(ctx, zmq.PULL)
        secure_server(self.pull, CurveConfig.server(keys), self.auth)
        self.endpoint = f"tcp://127.0.0.1:{self.pull.bind_to_random_port('tcp://127.0.0.1')}"

    def _socket(self, ctx: Context, kind: int) -> Socket:
        sock = ctx.socket(kind)
        sock.linger = 0
        self._open.append(sock)
        return sock

    def push(self, config: CurveConfig) -> Socket:
        sock = self._socket(self.client_ctx, zmq.PUSH)
        secure_client(sock, config)
        sock.connect(self.endpoint)
        return sock

    def receive(self) -> tuple[list[bytes], str | None]:
        assert self.pull.poll(TIMEOUT_MS, zmq.POLLIN), "nothing received"
        frames = self.pull.recv_multipart(copy=False)
        assert all(sender_of(frame) == sender_of(frames[0]) for frame in frames)  # on every part
        return [f.bytes for f in frames], sender_of(frames[0])

    def close(self) -> None:
        for sock in self._open:
            sock.close(linger=0)
        self.auth.stop()


@pytest.fixture
def pair(ctx: Context, keys: Path, clock: FakeClock) -> Iterator[Pair]:
    client_ctx: Context = zmq.Context()
    opened = Pair(ctx, client_ctx, keys, clock)
    yield opened
    opened.close()
    client_ctx.destroy(linger=0)


def test_every_message_names_its_key(pair: Pair, keys: Path) -> None:
    bed = pair.push(CurveConfig.client(keys, "bed-1"))
    ward = pair.push(CurveConfig.client(keys, "ward-a"))
    bed.send_multipart([b'{"stream": "bed-1"}', b"x"])
    ward.send_multipart([b'{"stream": "bed-2"}'])
    bed.send_multipart([b'{"stream": "bed-99"}'])
    received = [pair.receive() for _ in range(3)]
    by_user: dict[str | None, list[bytes]] = {}
    for parts, user in received:
        by_user.setdefault(user, []).append(parts[0])
    bed_id, ward_id = user_id("bed-1", public_of(keys, "bed-1")), user_id("ward-a", public_of(keys, "ward-a"))
    assert by_user == {bed_id: [b'{"stream": "bed-1"}', b'{"stream": "bed-99"}'], ward_id: [b'{"stream": "bed-2"}']}
    checks = [pair.auth.authorizer.check_push(user, json.loads(parts[0])["stream"]) for parts, user in received]
    assert sorted(checks, key=str) == [None, None, "stream_not_allowed"]


def test_revocation_stops_an_established_connection(pair: Pair, keys: Path, clock: FakeClock) -> None:
    push = pair.push(CurveConfig.client(keys, "bed-1"))
    push.send_multipart([b'{"stream": "bed-1"}'])
    _, user = pair.receive()
    assert pair.auth.authorizer.check_push(user, "bed-1") is None

    revoke_client(keys, "bed-1")
    add_client(keys, "bed-1", force=True, streams=["bed-1"])  # a fresh keypair under the same name
    clock.advance(1.0)
    assert pair.auth.reload_if_due()
    push.send_multipart([b'{"stream": "bed-1"}'])  # the connection is still up ...
    _, user = pair.receive()
    assert parse_user_id(user) is not None
    assert pair.auth.authorizer.check_push(user, "bed-1") == "key_revoked"  # ... and refused per message


def test_a_refused_handshake_is_logged_once_with_the_fingerprint(
    pair: Pair, keys: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _, secret = zmq.auth.create_certificates(elsewhere, "stranger")
    Path(secret).chmod(0o600)
    config = CurveConfig(secret_file=Path(secret), server_public_file=keys / "server.key")
    public = config.keypair()[0]
    with caplog.at_level(logging.WARNING, logger="monitor.transport"):
        for _ in range(2):  # two connections (and their reconnections) of the same unknown key
            pair.push(config)
        authorizer = pair.auth.authorizer
        with open_socket(pair.client_ctx, zmq.PAIR) as idle:  # nothing ever arrives: its poll is the wait
            for _ in range(100):
                if authorizer.handshakes_refused >= 2:
                    break
                idle.poll(20)
    assert authorizer.handshakes_refused >= 2
    assert not pair.pull.poll(100, zmq.POLLIN)
    refused = [r.getMessage() for r in caplog.records if "refused CURVE handshake" in r.getMessage()]
    assert len(refused) == 1
    assert fingerprint(public) in refused[0] and "from 127.0.0.1" in refused[0]
