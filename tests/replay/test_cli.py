"""ecg-replay: waits visibly for a missing monitor, stops promptly, and refuses bad input with exit 2."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from monitor.protocol import DataFrame, EndOfStream, decode_frame
from monitor.testing import ecg, write_record
from replay import _cli

FS = 250.0


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return write_record(tmp_path / "data", "syn", ecg([0.8] * 6, FS, seed=2)[0], FS)


@pytest.fixture(autouse=True)
def _signals_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cli, "stop_on_signals", lambda stop: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pull(ctx: zmq.Context[zmq.Socket[bytes]]) -> Iterator[tuple[zmq.Socket[bytes], str]]:
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sock.close(linger=0)


def test_replays_to_a_listening_monitor_without_waiting(
    record: Path, pull: tuple[zmq.Socket[bytes], str], capsys: pytest.CaptureFixture[str]
) -> None:
    sock, endpoint = pull
    assert _cli.main([str(record), "--connect", endpoint, "--speed", "max", "--chunk-ms", "1000"]) == 0
    err = capsys.readouterr().err
    frames = []
    while sock.poll(1000):
        frames.append(decode_frame(sock.recv_multipart()))
    assert isinstance(frames[-1], EndOfStream) and all(isinstance(f, DataFrame) for f in frames[:-1])
    assert "waiting" not in err and f"ecg-replay: sent {len(frames)} frames from 1 record(s)" in err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_without_a_monitor_it_says_it_waits_once_and_stops_within_a_second(
    signum: signal.Signals, record: Path
) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [sys.executable, "-m", "replay._cli", str(record), "--connect", endpoint, "--offline"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stderr, selectors.EVENT_READ)
                assert sel.select(timeout=60), "no message from ecg-replay"
            first = proc.stderr.readline()
            assert first.strip() == f"ecg-replay: waiting for the monitor at {endpoint} (Ctrl-C to stop)"
            time.sleep(0.5)  # still waiting: said once
            proc.send_signal(signum)
            t0 = time.monotonic()
            proc.wait(timeout=10)
            assert time.monotonic() - t0 < 1.0
            rest = proc.stderr.read()
        finally:
            proc.kill()
    assert proc.returncode == 0
    assert "waiting" not in rest and "Traceback" not in rest
    assert "stopped before the monitor was reached" in rest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["RECORD", "--connect", "nonsense"], "--connect nonsense: Invalid argument"),
        (["RECORD", "--connect", "tcp://127.0.0.1:1", "--data-dir", "RECORD.hea"], "is a file, not a folder"),
        (["RECORD", "--connect", "tcp://127.0.0.1:1", "--keys", "RECORD.hea"], "--keys needs --key-name"),
        (["", "--connect", "tcp://127.0.0.1:1"], "record name is empty"),
        (["sin", "--connect", "tcp://127.0.0.1:1"], "record 'sin' not found"),
        (["BADRATE", "--connect", "tcp://127.0.0.1:1"], "gives the sampling frequency as 'x', not a number > 0 Hz"),
    ],
)
def test_bad_input_is_exit_2_before_connecting(
    argv: list[str], message: str, record: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = record.with_name("bad")
    bad.with_name("bad.hea").write_text("bad 1 x 100\nbad.dat 16 200(0)/mV 16 0 0 0 0 MLII\n")
    argv = [a.replace("RECORD", str(record)).replace("BADRATE", str(bad)) for a in argv]
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"ecg-replay: error: {message}" in err or message in err
    assert "Traceback" not in err and "waiting" not in err
