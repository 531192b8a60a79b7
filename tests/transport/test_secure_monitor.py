"""The monitor with CURVE keys: only authorized devices feed it, only authorized bridges hear it."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from monitor.app import Monitor, MonitorConfig, Source
from monitor.protocol import encode_data
from monitor.transport import (
    Authenticator,
    CurveConfig,
    add_client,
    init_keys,
    revoke_client,
    secure_bind,
    secure_connect,
)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    init_keys(d)
    for name in ("device-1", "bridge-1"):
        add_client(d, name)
    other = tmp_path / "other"  # keys of another installation: unknown to this monitor
    init_keys(other)
    add_client(other, "intruder")
    return d


@pytest.fixture
def running(keys: Path, tmp_path: Path) -> Iterator[Monitor]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    config = MonitorConfig(keys=keys, alerts="tcp://127.0.0.1:*", status_interval_s=0.2, alarm_log=None)
    monitor = Monitor(Source(endpoint="tcp://127.0.0.1:*"), config, context=ctx)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    assert monitor.ready.wait(5)
    yield monitor
    monitor.stop()
    thread.join(10)
    ctx.destroy(linger=0)


def frames(stream: str, n: int = 20) -> list[list[bytes]]:
    x = (200 * np.sin(np.arange(36 * n) / 5.0)).astype(np.int16)[:, None]
    return [
        encode_data(stream, k, 36 * k, 360.0, x[36 * k : 36 * (k + 1)], channels=["MLII"], units=["mV"],
                    gain=[200.0], baseline=[0])
        for k in range(n)
    ]  # fmt: skip


def push(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, stream: str, curve: CurveConfig | None) -> None:
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 200)
    secure_connect(sock, endpoint, curve)
    for parts in frames(stream):
        try:
            sock.send_multipart(parts)
        except zmq.Again:  # a refused device never gets a connection to queue on
            break
    time.sleep(0.3)
    sock.close()


def wait_for(cond: object, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if callable(cond) and cond():
            return True
        time.sleep(0.05)
    return False


def test_only_authorized_devices_are_ingested(running: Monitor, keys: Path, tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        endpoint = running.bound_endpoint
        assert endpoint is not None
        push(ctx, endpoint, "plain", None)
        push(ctx, endpoint, "intruder", CurveConfig.client(tmp_path / "other", "intruder"))
        push(ctx, endpoint, "trusted", CurveConfig.client(keys, "device-1"))
        assert wait_for(lambda: "trusted" in running.ingest.streams)
        assert running.ingest.streams["trusted"].stats.frames == 20
        assert "plain" not in running.ingest.streams
        assert "intruder" not in running.ingest.streams
    finally:
        ctx.destroy(linger=0)


def test_each_key_pushes_only_the_streams_its_policy_allows(keys: Path, tmp_path: Path) -> None:
    add_client(keys, "bed-1", streams=["bed-1"])
    add_client(keys, "nurses", role="bridge")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    config = MonitorConfig(keys=keys, alarm_log=None)
    monitor = Monitor(Source(endpoint="tcp://127.0.0.1:*"), config, context=ctx)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    try:
        assert monitor.ready.wait(5) and monitor.bound_endpoint is not None
        endpoint = monitor.bound_endpoint
        push(ctx, endpoint, "bed-99", CurveConfig.client(keys, "bed-1"))  # another patient's id
        push(ctx, endpoint, "bed-2", CurveConfig.client(keys, "nurses"))  # a bridge's key
        push(ctx, endpoint, "bed-1", CurveConfig.client(keys, "bed-1"))
        assert wait_for(lambda: "bed-1" in monitor.ingest.streams and monitor.ingest.rejected["role"] == 20)
        assert monitor.ingest.rejected["stream_not_allowed"] == 20
        assert set(monitor.ingest.streams) == {"bed-1"}
        assert monitor.ingest.streams["bed-1"].stats.frames == 20
    finally:
        monitor.stop()
        thread.join(10)
        ctx.destroy(linger=0)


def test_a_revoked_key_is_refused_on_its_open_connection(keys: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    monitor = Monitor(Source(endpoint="tcp://127.0.0.1:*"), MonitorConfig(keys=keys, alarm_log=None), context=ctx)
    thread = threading.Thread(target=monitor.run)
    thread.start()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        assert monitor.ready.wait(5) and monitor.bound_endpoint is not None
        secure_connect(sock, monitor.bound_endpoint, CurveConfig.client(keys, "device-1"))
        msgs = frames("bed-7", n=40)
        for parts in msgs[:10]:
            sock.send_multipart(parts)
        assert wait_for(
            lambda: "bed-7" in monitor.ingest.streams and monitor.ingest.streams["bed-7"].stats.frames == 10
        )
        revoke_client(keys, "device-1")
        time.sleep(2.5)  # the key folder is read again at most every 2 s
        for parts in msgs[10:]:  # the same connection, still open
            sock.send_multipart(parts)
        assert wait_for(lambda: monitor.ingest.rejected["key_revoked"] == 30)
        assert monitor.ingest.streams["bed-7"].stats.frames == 10
    finally:
        sock.close()
        monitor.stop()
        thread.join(10)
        ctx.destroy(linger=0)


def test_only_authorized_bridges_hear_the_alert_bus(running: Monitor, keys: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        endpoint = running.alerts_endpoint
        assert endpoint is not None
        good = ctx.socket(zmq.SUB)
        secure_connect(good, endpoint, CurveConfig.client(keys, "bridge-1"))
        plain = ctx.socket(zmq.SUB)
        plain.connect(endpoint)
        for s in (good, plain):
            s.setsockopt(zmq.LINGER, 0)
            s.subscribe(b"status/")
        assert good.poll(3000, zmq.POLLIN), "the authorized bridge got no status message"
        assert good.recv_multipart()[0] == b"status/"
        assert not plain.poll(600, zmq.POLLIN), "a plaintext subscriber received a message"
    finally:
        ctx.destroy(linger=0)


def test_engine_serves_authorized_monitors_only(keys: Path, tmp_path: Path) -> None:
    from engine import DEFAULT_WEIGHTS, BatcherConfig, CnnClassifier, EngineServer, EngineUnavailable, RemoteClassifier

    add_client(keys, "monitor-1")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    clf = CnnClassifier.load(DEFAULT_WEIGHTS)
    server_curve = CurveConfig.server(keys)
    try:
        with Authenticator(ctx, server_curve) as auth:
            bind = functools.partial(secure_bind, config=server_curve, authenticator=auth)
            server = EngineServer(clf.backend, clf.rep_cfg, "tcp://127.0.0.1:*", BatcherConfig(), ctx, bind=bind)
            stop = threading.Event()
            thread = threading.Thread(target=server.run, args=(stop,))
            thread.start()
            try:
                assert server.ready.wait(5) and server.bound_endpoint
                connect = functools.partial(secure_connect, config=CurveConfig.client(keys, "monitor-1"))
                with RemoteClassifier(server.bound_endpoint, timeout_s=5, context=ctx, connect=connect) as trusted:
                    assert trusted.name.startswith("remote/")
                with pytest.raises(EngineUnavailable):
                    RemoteClassifier(server.bound_endpoint, timeout_s=0.5, context=ctx)
            finally:
                stop.set()
                thread.join(5)
    finally:
        ctx.destroy(linger=0)


def test_client_flags_need_a_key_name(keys: Path) -> None:
    from monitor.errors import ConfigError
    from monitor.transport import client_from_flags

    assert client_from_flags(None, "device-1", "the device's") is None
    with pytest.raises(ConfigError, match="--keys needs --key-name"):
        client_from_flags(keys, None, "the device's")
    assert client_from_flags(keys, "device-1", "the device's") == CurveConfig.client(keys, "device-1")
