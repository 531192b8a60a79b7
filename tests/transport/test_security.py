"""CURVE authentication of the ingest, alerts and engine socket pairs, the ecg-keys CLI, the loopback guard
and sockets as context managers."""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import shutil
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from monitor.cli._keys import main
from monitor.errors import ConfigError
from monitor.transport import (
    Authenticator,
    CurveConfig,
    add_client,
    bound_socket,
    check_bind,
    connected_socket,
    init_keys,
    is_loopback,
    last_endpoint,
    list_clients,
    open_socket,
    secure_bind,
    secure_client,
    secure_connect,
    secure_server,
    server_public_key,
)

Socket = zmq.Socket[bytes]
Context = zmq.Context[Socket]

TIMEOUT_MS = 2000  # the longest any receive waits
QUIET_MS = 200  # how long "nothing arrives" is checked once the refusal event was seen

# (pair, server type, client type)
PAIRS = [
    pytest.param(zmq.PULL, zmq.PUSH, id="ingest-pull-push"),
    pytest.param(zmq.XPUB, zmq.SUB, id="alerts-xpub-sub"),
    pytest.param(zmq.ROUTER, zmq.DEALER, id="engine-router-dealer"),
]
FAILED_AUTH = zmq.EVENT_HANDSHAKE_FAILED_AUTH  # the ZAP handler said no (status 400)
# A plaintext peer: the server sees the mechanism mismatch, or the peer hangs up first (a race).
FAILED_HANDSHAKE = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | FAILED_AUTH | FAILED_HANDSHAKE


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    init_keys(folder)
    add_client(folder, "device-1")
    return folder


@pytest.fixture
def client_ctx() -> Iterator[Context]:
    context: Context = zmq.Context()
    yield context
    context.destroy(linger=0)


class Sockets(contextlib.ExitStack):
    """Every socket a test opens, closed (linger 0) when the test ends, before its context is destroyed."""

    def open(self, ctx: Context, kind: int) -> Socket:
        return self.enter_context(open_socket(ctx, kind))

    def keep(self, sock: Socket) -> Socket:
        self.callback(sock.close, linger=0)
        return sock


@pytest.fixture
def sockets(ctx: Context, client_ctx: Context) -> Iterator[Sockets]:
    with Sockets() as opened:
        yield opened


@pytest.fixture
def auth(ctx: Context, keys: Path) -> Iterator[Authenticator]:
    with Authenticator(ctx, CurveConfig.server(keys)) as authenticator:
        yield authenticator
    assert not authenticator.running


@pytest.fixture
def stranger(tmp_path: Path, keys: Path) -> CurveConfig:
    """A client with a well-formed keypair that was never authorized."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _, secret = zmq.auth.create_certificates(elsewhere, "stranger")
    Path(secret).chmod(0o600)
    return CurveConfig(secret_file=Path(secret), server_public_file=keys / "server.key")


class Server:
    """A CURVE server socket bound on a random loopback port, with its event monitor."""

    def __init__(self, sockets: Sockets, ctx: Context, kind: int, keys: Path, auth: Authenticator) -> None:
        self.kind = kind
        self.sock = sockets.open(ctx, kind)
        secure_server(self.sock, CurveConfig.server(keys), auth)
        self.monitor = sockets.keep(self.sock.get_monitor_socket(EVENTS))
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def wait_event(self, events: int) -> Mapping[str, Any] | None:
        """The first monitor event among ``events`` (a mask) within the timeout, or None."""
        while self.monitor.poll(TIMEOUT_MS, zmq.POLLIN):
            message = recv_monitor_message(self.monitor)
            if message["event"] & events:
                return message
        return None


def client(sockets: Sockets, ctx: Context, kind: int, endpoint: str, config: CurveConfig | None) -> Socket:
    sock = sockets.open(ctx, kind)
    if kind == zmq.SUB:
        sock.subscribe(b"")
    secure_connect(sock, endpoint, config)
    return sock


def exchange(server: Server, sock: Socket, timeout_ms: int = TIMEOUT_MS) -> bool:
    """One message of the pair's kind, client to server (or server to subscriber); True when it arrived."""
    if server.kind == zmq.XPUB:
        # The subscription reaches the XPUB only over an accepted connection; then an alert goes out.
        if not server.sock.poll(timeout_ms, zmq.POLLIN):
            return False
        assert server.sock.recv() == b"\x01"
        server.sock.send(b"alert")
        assert sock.poll(TIMEOUT_MS, zmq.POLLIN), "subscribed but the alert did not arrive"
        return sock.recv() == b"alert"
    with contextlib.suppress(zmq.Again):
        sock.send(b"beats", zmq.NOBLOCK)
    if not server.sock.poll(timeout_ms, zmq.POLLIN):
        return False
    frames = server.sock.recv_multipart()
    assert frames[-1] == b"beats"
    if server.kind == zmq.ROUTER:
        server.sock.send_multipart([frames[0], b"labels"])
        assert sock.poll(TIMEOUT_MS, zmq.POLLIN), "the engine reply did not come back"
        return sock.recv() == b"labels"
    return True


def assert_refused(server: Server, sock: Socket, events: int) -> Mapping[str, Any]:
    message = server.wait_event(events)
    assert message is not None, f"no handshake failure event ({events:#x}) on the server"
    assert not exchange(server, sock, QUIET_MS), "a refused client's message arrived"
    return message


# --------------------------------------------------------------------------- the three socket pairs


@pytest.mark.parametrize(("server_kind", "client_kind"), PAIRS)
def test_authorized_client_is_accepted(
    ctx: Context,
    client_ctx: Context,
    keys: Path,
    auth: Authenticator,
    server_kind: int,
    client_kind: int,
    sockets: Sockets,
) -> None:
    server = Server(sockets, ctx, server_kind, keys, auth)
    sock = client(sockets, client_ctx, client_kind, server.endpoint, CurveConfig.client(keys, "device-1"))
    assert server.wait_event(zmq.EVENT_HANDSHAKE_SUCCEEDED) is not None
    assert exchange(server, sock)


@pytest.mark.parametrize(("server_kind", "client_kind"), PAIRS)
def test_unknown_key_is_refused(
    ctx: Context,
    client_ctx: Context,
    keys: Path,
    auth: Authenticator,
    stranger: CurveConfig,
    server_kind: int,
    client_kind: int,
    sockets: Sockets,
) -> None:
    server = Server(sockets, ctx, server_kind, keys, auth)
    sock = client(sockets, client_ctx, client_kind, server.endpoint, stranger)
    message = assert_refused(server, sock, FAILED_AUTH)
    assert message["value"] == 400  # the ZAP handler's "no access"


@pytest.mark.parametrize(("server_kind", "client_kind"), PAIRS)
def test_plaintext_client_is_refused(
    ctx: Context,
    client_ctx: Context,
    keys: Path,
    auth: Authenticator,
    server_kind: int,
    client_kind: int,
    sockets: Sockets,
) -> None:
    server = Server(sockets, ctx, server_kind, keys, auth)
    sock = client(sockets, client_ctx, client_kind, server.endpoint, None)
    message = assert_refused(server, sock, FAILED_HANDSHAKE)
    if message["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        assert message["value"] == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH


@pytest.mark.parametrize(("server_kind", "client_kind"), PAIRS)
def test_revoked_client_is_refused_after_reload(
    ctx: Context,
    client_ctx: Context,
    keys: Path,
    auth: Authenticator,
    server_kind: int,
    client_kind: int,
    sockets: Sockets,
) -> None:
    config = CurveConfig.client(keys, "device-1")
    server = Server(sockets, ctx, server_kind, keys, auth)
    first = client(sockets, client_ctx, client_kind, server.endpoint, config)
    assert exchange(server, first)
    first.close()
    if server_kind == zmq.XPUB:  # the closed subscriber's unsubscription
        assert server.sock.poll(TIMEOUT_MS, zmq.POLLIN) and server.sock.recv() == b"\x00"

    assert main(["revoke", str(keys), "device-1"]) == 0
    assert auth.reload_if_changed()
    assert auth.keys == 0

    again = client(sockets, client_ctx, client_kind, server.endpoint, config)
    assert_refused(server, again, FAILED_AUTH)


def test_added_client_is_accepted_after_reload(
    ctx: Context, client_ctx: Context, keys: Path, auth: Authenticator, sockets: Sockets
) -> None:
    server = Server(sockets, ctx, zmq.PULL, keys, auth)
    assert not auth.reload_if_changed()
    assert main(["add-client", str(keys), "bridge"]) == 0
    assert auth.reload() == 2
    sock = client(sockets, client_ctx, zmq.PUSH, server.endpoint, CurveConfig.client(keys, "bridge"))
    assert exchange(server, sock)


def test_client_with_wrong_server_key_does_not_connect(
    ctx: Context, client_ctx: Context, keys: Path, auth: Authenticator, tmp_path: Path, sockets: Sockets
) -> None:
    other = tmp_path / "other"
    init_keys(other)
    good = CurveConfig.client(keys, "device-1")
    impostor_view = CurveConfig(secret_file=good.secret_file, server_public_file=other / "server.key")
    server = Server(sockets, ctx, zmq.PULL, keys, auth)
    sock = client(sockets, client_ctx, zmq.PUSH, server.endpoint, impostor_view)
    assert_refused(server, sock, FAILED_HANDSHAKE)


def test_server_refuses_everyone_once_authenticator_stopped(
    ctx: Context, client_ctx: Context, keys: Path, auth: Authenticator, sockets: Sockets
) -> None:
    server = Server(sockets, ctx, zmq.PULL, keys, auth)
    auth.stop()
    sock = client(sockets, client_ctx, zmq.PUSH, server.endpoint, CurveConfig.client(keys, "device-1"))
    # Fail closed: no ZAP handler for an enforced domain is a refusal, not a free pass.
    message = assert_refused(server, sock, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    assert message["value"] == errno.EFAULT


# --------------------------------------------------------------------------- Authenticator and wiring


def test_authenticator_stops_its_thread(ctx: Context, keys: Path) -> None:
    before = threading.active_count()
    with Authenticator(ctx, CurveConfig.server(keys)) as auth:
        assert auth.running
        assert threading.active_count() == before + 1
    assert not auth.running
    assert threading.active_count() == before
    auth.stop()  # idempotent


def test_second_authenticator_in_a_context_fails_loudly(ctx: Context, keys: Path, auth: Authenticator) -> None:
    before = threading.active_count()
    with pytest.raises(ConfigError, match="already runs"):
        Authenticator(ctx, CurveConfig.server(keys)).start()
    assert threading.active_count() == before
    assert auth.running


def test_authenticator_reports_a_missing_folder(ctx: Context, keys: Path) -> None:
    config = CurveConfig.server(keys)
    shutil.rmtree(keys / "authorized")
    with pytest.raises(ConfigError, match="authorized"):
        Authenticator(ctx, config).start()


def test_secure_server_needs_a_running_authenticator_of_its_context(
    ctx: Context, client_ctx: Context, keys: Path, sockets: Sockets
) -> None:
    config = CurveConfig.server(keys)
    auth = Authenticator(ctx, config)
    sock = sockets.open(ctx, zmq.PULL)
    with pytest.raises(ConfigError, match="running Authenticator"):
        secure_server(sock, config, auth)
    with auth:
        other = sockets.open(client_ctx, zmq.PULL)
        with pytest.raises(ConfigError, match="another zmq context"):
            secure_server(other, config, auth)
        with pytest.raises(ConfigError, match="client CurveConfig"):
            secure_client(sock, config)
        sock.bind("inproc://bound-already")
        with pytest.raises(ConfigError, match="before the socket binds"):
            secure_server(sock, config, auth)


def test_secure_bind_returns_endpoint_and_guards(
    ctx: Context, keys: Path, auth: Authenticator, sockets: Sockets
) -> None:
    sock = sockets.open(ctx, zmq.PULL)
    with pytest.raises(ConfigError, match="Authenticator"):
        secure_bind(sock, "tcp://127.0.0.1:*", CurveConfig.server(keys))
    bound = secure_bind(sock, "tcp://127.0.0.1:*", CurveConfig.server(keys), auth)
    assert bound.startswith("tcp://127.0.0.1:") and not bound.endswith("*")


def test_config_errors_name_the_path(tmp_path: Path, keys: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        CurveConfig.server(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"ghost\.key_secret"):
        CurveConfig.client(keys, "ghost")
    with pytest.raises(ConfigError, match="no secret key"):
        CurveConfig(secret_file=keys / "server.key", authorized_dir=keys / "authorized").keypair()
    with pytest.raises(ConfigError, match="exactly one"):
        CurveConfig(secret_file=keys / "server.key_secret")
    (keys / "authorized" / "broken.key").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"broken\.key"):
        CurveConfig.server(keys)


# --------------------------------------------------------------------------- ecg-keys


def test_cli_init_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "site" / "keys"
    assert main(["init", str(folder)]) == 0
    assert (folder / "server.key").is_file() and (folder / "authorized").is_dir()
    assert stat.S_IMODE((folder / "server.key_secret").stat().st_mode) == 0o600
    assert list(folder.iterdir()) and not list((folder / "authorized").iterdir())

    assert main(["add-client", str(folder), "monitor-a"]) == 0
    assert main(["add-client", str(folder), "bridge"]) == 0
    secret = folder / "clients" / "monitor-a.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (folder / "authorized" / "monitor-a.key").read_text() == (folder / "clients" / "monitor-a.key").read_text()
    public, secret_key = zmq.auth.load_certificate(secret)
    assert secret_key and zmq.auth.load_certificate(folder / "authorized" / "monitor-a.key")[0] == public
    assert not [p for p in folder.rglob(".*")]  # no staging leftovers

    capsys.readouterr()
    assert main(["list", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("server") and lines[0].endswith(server_public_key(folder))
    assert [line.split()[:2] for line in lines[1:]] == [["bridge", "authorized"], ["monitor-a", "authorized"]]
    assert public.decode() in lines[2]

    assert main(["revoke", str(folder), "monitor-a"]) == 0
    assert not (folder / "authorized" / "monitor-a.key").exists()
    assert [(c.name, c.status) for c in list_clients(folder)] == [("bridge", "authorized"), ("monitor-a", "revoked")]


def test_cli_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "keys"
    assert main(["init", str(folder)]) == 0
    server_key = (folder / "server.key").read_text()
    assert main(["init", str(folder)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (folder / "server.key").read_text() == server_key

    assert main(["add-client", str(folder), "dev"]) == 0
    client_key = (folder / "clients" / "dev.key_secret").read_text()
    assert main(["add-client", str(folder), "dev"]) == 2
    err = capsys.readouterr().err
    assert "dev.key already exists" in err and "--force" in err
    assert main(["add-client", str(folder), "dev", "--force"]) == 0
    assert (folder / "clients" / "dev.key_secret").read_text() != client_key

    assert main(["init", str(folder), "--force"]) == 0
    assert (folder / "server.key").read_text() != server_key
    assert stat.S_IMODE((folder / "server.key_secret").stat().st_mode) == 0o600
    assert (folder / "authorized" / "dev.key").is_file()  # clients survive a new server key


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add-client", "{missing}", "dev"], "does not exist"),
        (["list", "{missing}"], "does not exist"),
        (["revoke", "{keys}", "dev"], "not authorized"),
        (["add-client", "{keys}", "../escape"], "not valid"),
        (["add-client", "{plain}", "dev"], "not a keys directory"),
    ],
)
def test_cli_errors_exit_2(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "plain").mkdir()
    paths = {"missing": tmp_path / "missing", "keys": keys, "plain": tmp_path / "plain"}
    assert main([arg.format(**paths) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ecg-keys: error:") and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "ecg-keys: error: the following arguments are required: COMMAND"),
        (["add-client"], "ecg-keys add-client: error: the following arguments are required: DIR, NAME"),
        (["rotate", "keys"], "ecg-keys: error: argument COMMAND: invalid choice: 'rotate'"),
        (["add-client", "keys"], "ecg-keys add-client: error: the following arguments are required: NAME"),
        (["init", "keys", "--bogus"], "ecg-keys: error: unrecognized arguments: --bogus"),
    ],
)
def test_cli_bad_usage_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("usage: ecg-keys") and message in captured.err
    assert "Traceback" not in captured.err


def test_cli_help_describes_commands_and_layout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ecg-keys")
    assert all(f"    {command}" in out for command in ("init", "add-client", "revoke", "list"))
    assert "KEYS folder:" in out and "authorized/NAME.key" in out and "clients/NAME.key_secret" in out
    assert "``" not in out and "(default" not in out


@pytest.mark.parametrize(
    ("command", "positionals", "options"),
    [
        ("init", ["DIR"], ["--force"]),
        ("add-client", ["DIR", "NAME"], ["--role", "--streams", "--force"]),
        ("policy", ["DIR", "NAME"], ["--role", "--streams"]),
        ("revoke", ["DIR", "NAME"], []),
        ("list", ["DIR"], []),
    ],
)
def test_cli_command_help_describes_every_argument(
    command: str, positionals: list[str], options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "-h"])
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"usage: ecg-keys {command}") and captured.err == ""
    entries = [line.split() for line in captured.out.splitlines() if re.match(r"  \S", line)]
    assert [words[0] for words in entries] == [*positionals, "-h,", *options]
    assert all(len(words) > 1 for words in entries)  # each with its description
    assert "``" not in captured.out


# --------------------------------------------------------------------------- sockets as context managers


def test_open_socket_is_closed_after_the_block(ctx: Context) -> None:
    with open_socket(ctx, zmq.PULL) as sock:
        assert not sock.closed and sock.linger == 0 and sock.type == zmq.PULL
    assert sock.closed
    with open_socket(ctx, zmq.PUSH, linger=250) as sock:
        assert sock.linger == 250
    assert sock.closed


def test_open_socket_is_closed_on_an_exception(ctx: Context) -> None:
    with pytest.raises(RuntimeError, match="inside"), open_socket(ctx, zmq.PUSH) as sock:
        sock.connect("tcp://127.0.0.1:9")  # nobody listens: the message stays queued, dropped on close
        sock.send(b"never delivered", zmq.NOBLOCK)
        raise RuntimeError("inside")
    assert sock.closed


class RecordingContext(zmq.Context[Socket]):
    """A context that remembers every socket it made."""

    made: list[Socket]

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "made", [])  # zmq.Context maps unknown attribute names to context options

    def socket(self, *args: Any, **kwargs: Any) -> Socket:
        sock = super().socket(*args, **kwargs)
        self.made.append(sock)
        return sock


def test_bound_and_connected_sockets_talk_with_curve_and_close(tmp_path: Path, keys: Path) -> None:
    server_ctx, client_ctx = RecordingContext(), RecordingContext()
    try:
        with (
            Authenticator(server_ctx, CurveConfig.server(keys)) as auth,
            bound_socket(server_ctx, zmq.PULL, "tcp://127.0.0.1:*", CurveConfig.server(keys), auth) as server,
        ):
            endpoint = last_endpoint(server)
            assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith("*")
            with connected_socket(client_ctx, zmq.PUSH, endpoint, CurveConfig.client(keys, "device-1")) as sock:
                assert last_endpoint(sock) == endpoint
                sock.send(b"beats", zmq.NOBLOCK)
                assert server.poll(TIMEOUT_MS, zmq.POLLIN) and server.recv() == b"beats"
            assert sock.closed and not server.closed
        assert server.closed
        # A failed bind (keys but no Authenticator) still closes the socket it opened.
        with (
            pytest.raises(ConfigError, match="Authenticator"),
            bound_socket(server_ctx, zmq.PULL, "tcp://127.0.0.1:*", CurveConfig.server(keys)),
        ):
            pass
        assert [s.type for s in client_ctx.made] == [zmq.PUSH]
        assert [s.type for s in server_ctx.made if s.type == zmq.PULL] == [zmq.PULL, zmq.PULL]  # and the ZAP handler's
        assert all(s.closed for s in server_ctx.made + client_ctx.made)
    finally:
        server_ctx.destroy(linger=0)
        client_ctx.destroy(linger=0)


# --------------------------------------------------------------------------- loopback guard


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.3.2.1:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://lo:5555", True),
        ("ipc:///tmp/ecg", True),
        ("inproc://ingest", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://monitor.example:5555", False),
        ("ws://127.0.0.1:5555", False),
    ],
)
def test_is_loopback(endpoint: str, loopback: bool) -> None:
    assert is_loopback(endpoint) is loopback


def test_is_loopback_rejects_malformed() -> None:
    with pytest.raises(ConfigError, match="5555"):
        is_loopback("5555")


@pytest.mark.parametrize("endpoint", ["tcp://*:5555", "tcp://0.0.0.0:6000", "tcp://10.0.0.7:5555"])
def test_check_bind_warns_for_exposed_plaintext(endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="monitor.transport"):
        message = check_bind(endpoint, secured=False)
    assert message is not None and endpoint in message and "without CURVE keys" in message
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [message]


@pytest.mark.parametrize(
    ("endpoint", "secured"),
    [("tcp://*:5555", True), ("tcp://127.0.0.1:5555", False), ("ipc:///tmp/ecg", False), ("inproc://x", False)],
)
def test_check_bind_quiet(endpoint: str, secured: bool, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="monitor.transport"):
        assert check_bind(endpoint, secured=secured) is None
    assert not caplog.records


def test_secure_bind_warns_when_exposed(ctx: Context, caplog: pytest.LogCaptureFixture, sockets: Sockets) -> None:
    sock = sockets.open(ctx, zmq.PULL)
    with caplog.at_level(logging.WARNING, logger="monitor.transport"):
        bound = secure_bind(sock, "tcp://0.0.0.0:*")
    assert bound.startswith("tcp://0.0.0.0:")
    assert any("without CURVE keys" in r.getMessage() for r in caplog.records)
