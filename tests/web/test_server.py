"""The central station's web server: security headers, the token, origins, acknowledge and audio pause."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.errors import ConfigError
from monitor.web import CSP, CentralServer, WardState, read_token

TOKEN = "a-station-token-0123456789"


@pytest.fixture
def ward() -> WardState:
    ward = WardState()
    vt = {
        "alarm_id": "bed-1:vt:10",
        "stream": "bed-1",
        "kind": "vt",
        "priority": "high",
        "category": "clinical",
        "text": "V-tach",
        "onset_sample": 10,
        "time": 1.0,
    }
    ward.apply("bus", None, {"bed-1": [vt]})
    return ward


def _server(ward: WardState, **kw: Any) -> Iterator[CentralServer]:
    server = CentralServer(ward, "127.0.0.1", 0, clock=lambda: 1000.0, **kw).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_server(ward: WardState) -> Iterator[CentralServer]:
    yield from _server(ward)


@pytest.fixture
def token_server(ward: WardState) -> Iterator[CentralServer]:
    yield from _server(ward, token=TOKEN)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def url(server: CentralServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def test_every_response_carries_the_security_headers_and_only_the_shipped_files_are_served(
    open_server: CentralServer,
) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            for path in ("/", "/static/central.js", "/static/central.css"):
                async with s.get(url(open_server, path)) as r:
                    assert r.status == 200
                    assert r.headers["Content-Security-Policy"] == CSP
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
                    assert r.headers["X-Frame-Options"] == "DENY"
                    assert r.headers["Referrer-Policy"] == "same-origin"
            for path in ("/static/..%2F_server.py", "/static/nothing.js", "/static/__init__.py"):
                async with s.get(url(open_server, path)) as r:
                    assert r.status == 404
            async with s.get(url(open_server, "/")) as r:
                page = await r.text()
        assert '<script src="/static/central.js"' in page and "http" not in page.replace("http-equiv", "")

    run(go())
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


def test_beyond_loopback_a_token_is_required() -> None:
    with pytest.raises(ValueError, match="token"):
        CentralServer(WardState(), "0.0.0.0", 0)
    CentralServer(WardState(), "0.0.0.0", 0, token=TOKEN)  # accepted (not started)


def test_without_the_token_nothing_but_the_sign_in_page_is_served(token_server: CentralServer) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:  # cookies for an IP host
            async with s.get(url(token_server), allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login"
            for path in ("/ws", "/static/central.js"):
                async with s.get(url(token_server, path)) as r:
                    assert r.status == 401
            async with s.post(url(token_server, "/api/ack"), json={"bed": "bed-1", "alarm_id": "bed-1:vt:10"}) as r:
                assert r.status == 401
            async with s.post(url(token_server, "/login"), data={"name": "eve", "token": "guess"}) as r:
                assert r.status == 401
            async with s.post(url(token_server, "/login"), data={"name": "ann", "token": TOKEN}) as r:
                assert r.status == 200 and r.url.path == "/"  # redirected to the page, with the session cookie
            async with s.ws_connect(url(token_server, "/ws"), origin=url(token_server)[:-1]) as ws:
                first = json.loads((await ws.receive()).data)
                assert first["t"] == "ward" and first["beds"][0]["bed"] == "bed-1"

    run(go())
    assert token_server.login_failures == 1 and list(token_server.sessions.values()) == ["ann"]


def test_a_websocket_or_post_from_another_origin_is_refused(open_server: CentralServer) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(url(open_server, "/ws"), origin="http://evil.example")
            assert err.value.status == 403
            async with s.post(
                url(open_server, "/api/ack"),
                json={"bed": "bed-1", "alarm_id": "bed-1:vt:10"},
                headers={"Origin": "http://evil.example"},
            ) as r:
                assert r.status == 403

    run(go())


def test_acknowledge_and_audio_pause_reach_every_page(ward: WardState) -> None:
    acks: list[tuple[str, str, str, float]] = []
    gen = _server(ward, on_ack=lambda alarm, *rest: acks.append((alarm["id"], *rest)))
    server = next(gen)

    async def go() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as s, s.ws_connect(url(server, "/ws"), origin=url(server)[:-1]) as ws:
            got = [json.loads((await ws.receive()).data) for _ in range(2)]  # the ward, the audio state
            async with s.post(url(server, "/api/ack"), json={"bed": "bed-1", "alarm_id": "nope"}) as r:
                assert r.status == 404
            async with s.post(url(server, "/api/ack"), data="not json") as r:
                assert r.status == 400
            async with s.post(url(server, "/api/ack"), json={"bed": "bed-1", "alarm_id": "bed-1:vt:10"}) as r:
                assert r.status == 200
            async with s.post(url(server, "/api/pause")) as r:
                assert (await r.json())["paused_until"] == 1120.0
            got += [json.loads((await ws.receive()).data) for _ in range(3)]
            return got

    try:
        got = run(go())
    finally:
        next(gen, None)
    assert [m["t"] for m in got] == ["ward", "audio", "ack", "alarms", "audio"]
    assert got[2] == {"t": "ack", "bed": "bed-1", "alarm_id": "bed-1:vt:10", "by": "local user", "at": 1000.0}
    assert got[3]["alarms"][0]["acked"] == {"by": "local user", "at": 1000.0}
    assert got[4]["paused_until"] == 1120.0 and acks == [("bed-1:vt:10", "bed-1", "local user", 1000.0)]


def test_the_token_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="others can read it"):
        read_token(path)
    os.chmod(path, 0o600)
    assert read_token(path) == TOKEN
    path.write_text("short")
    with pytest.raises(ConfigError, match="shorter than 16"):
        read_token(path)
    with pytest.raises(ConfigError, match="--web-token-file"):
        read_token(tmp_path / "missing")
    assert read_token(None) is None


def test_the_bed_view_gives_one_bed_in_full(open_server: CentralServer) -> None:
    async def go() -> list[tuple[int, Any]]:
        out = []
        async with aiohttp.ClientSession() as s:
            for body in ({"bed": "bed-1"}, {"bed": "bed-9"}, {"nope": 1}):
                async with s.post(url(open_server, "/api/bed"), json=body) as r:
                    out.append((r.status, await r.json() if r.status == 200 else await r.text()))
        return out

    (ok, view), (missing, _), (bad, _) = run(go())
    assert (ok, missing, bad) == (200, 404, 400)
    assert view["bed"] == "bed-1" and [h["kind"] for h in view["history"]] == ["vt"]
    assert view["history"][0]["active"] and view["trend"]["hr"] == []
