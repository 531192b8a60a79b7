"""The central station's web server (aiohttp): the page, its live feed over a WebSocket, acknowledge and pause.

Security, as a bedside network needs it:

- Bound to loopback unless told otherwise; beyond loopback a token is required (refused without one). The
  page then asks for the token once (a form posted to ``/login``, never a URL parameter) and gets a session
  cookie (``HttpOnly``, ``SameSite=Strict``); a wrong token is counted and answered after a pause.
- No patient data in URLs: the feed is one WebSocket, acknowledgements are POSTed JSON.
- A WebSocket or POST from another origin is refused (``Origin`` must be this server).
- Every response carries a strict Content-Security-Policy (scripts, styles and connections from this server
  only; nothing inline, nothing from elsewhere: the page's files ship in the package), ``nosniff``, no
  referrer beyond this server, no framing, no caching.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from monitor.web._ward import WardState

__all__ = ["CSP", "CentralServer", "is_loopback"]

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "media-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
STATIC = {
    "central.js": "text/javascript",
    "central.css": "text/css",
    "index.html": "text/html",
    "login.html": "text/html",
}
SESSION_COOKIE = "ecg_session"
AUDIO_PAUSE_S = 120.0  # IEC 60601-1-8: an audio pause of limited time (2 min here)
QUEUE = 4096  # messages waiting per page before the oldest are dropped (counted)
HAND_OVER_S = 0.05  # messages published from other threads are handed to the pages this often
VIEWED_S = 12.0  # a bed view asks for its bed every 5 s: one not asked for in this long is closed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _fields(request: web.Request, *names: str) -> list[str]:
    """The named fields of a POSTed JSON object, as text; 400 when the body is not such an object."""
    try:
        body = await request.json()
        return [str(body[name]) for name in names]
    except (ValueError, KeyError, TypeError):
        expected = ", ".join(f'"{name}": ...' for name in names)
        raise web.HTTPBadRequest(text=f"expected {{{expected}}}") from None


def _asset(name: str) -> bytes:
    return resources.files("monitor.web").joinpath("static", name).read_bytes()


class CentralServer:
    """Serves ``ward`` at ``http://host:port/`` from its own thread (:meth:`start`, :meth:`stop`).

    ``on_ack(alarm, stream, who, when)`` records an acknowledgement of an active alarm (its page view: ``id``,
    ``monitor``...), e.g. in the alarm log or at its monitor, and returns None, or why it could not (the page
    is then told, and the alarm stays unacknowledged; it runs on a worker thread); ``strip(alarm_id)`` gives an
    alarm's review strip (``values`` at ``fs`` from ``sample``, ``onset_sample``, ...) or None. :attr:`port` is
    the bound port (``port=0``: any).
    """

    def __init__(
        self,
        ward: WardState,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        token: str | None = None,
        on_ack: Callable[[dict[str, Any], str, str, float], str | None] | None = None,
        strip: Callable[[str], dict[str, Any] | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(f"--web {host}:{port} reaches beyond this machine: give a token (--web-token-file)")
        self.ward, self.host, self.port = ward, host, port
        self.token = token
        self.on_ack = on_ack
        self.strip = strip
        self.clock = clock
        self.sessions: dict[str, str] = {}  # session id -> who
        self.login_failures = 0
        self.dropped = 0  # page messages dropped for a page that could not keep up
        self.acks: list[dict[str, Any]] = []
        self.audio_paused_until = 0.0
        self._clients: set[asyncio.Queue[str]] = set()
        self._waiting: collections.deque[list[dict[str, Any]]] = collections.deque()  # from other threads
        self._viewed: dict[str, float] = {}  # bed -> when a bed view last asked for it (monotonic)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # --- the app ---------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._auth], client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/login", self._login_page)
        app.router.add_post("/login", self._login)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/ack", self._ack)
        app.router.add_post("/api/pause", self._pause)
        app.router.add_post("/api/strip", self._strip)
        app.router.add_post("/api/bed", self._bed)
        return app

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make forms send Origin: null
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    def who(self, request: web.Request) -> str | None:
        """The signed-in user of ``request``, ``None`` if it must sign in (with a token)."""
        if not self.token:
            return "local user"
        return self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ("/login", "/static/login.html", "/static/central.css") or self.who(request):
            if request.method == "POST" or request.path == "/ws":
                origin = request.headers.get("Origin")
                if origin is not None and origin != f"{request.scheme}://{request.host}":
                    raise web.HTTPForbidden(text="cross-origin request refused")
            return await handler(request)
        if request.path == "/":
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="sign in first")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_asset("index.html"), content_type="text/html")

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=_asset("login.html"), content_type="text/html")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = str(form.get("token", ""))
        who = str(form.get("name", "")).strip()[:64] or "unnamed"
        if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
            self.login_failures += 1
            await asyncio.sleep(1.0)  # slows guessing
            raise web.HTTPUnauthorized(text="wrong token")
        session = secrets.token_urlsafe(32)
        self.sessions[session] = who
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            SESSION_COOKIE, session, httponly=True, samesite="Strict", secure=request.scheme == "https", path="/"
        )
        raise response

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_asset(name), content_type=STATIC[name])

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        self._clients.add(queue)
        try:
            await ws.send_str(json.dumps(self.ward.snapshot()))
            await ws.send_str(json.dumps(self._audio()))
            reader = asyncio.ensure_future(self._drain_client(ws))
            while not ws.closed and not reader.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    await ws.send_str(getter.result())
                else:
                    getter.cancel()
            reader.cancel()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return ws

    async def _drain_client(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:  # the page only listens; anything it sends is ignored
            if msg.type == WSMsgType.ERROR:
                return

    def _audio(self) -> dict[str, Any]:
        return {"t": "audio", "paused_until": self.audio_paused_until, "now": self.clock()}

    async def _ack(self, request: web.Request) -> web.StreamResponse:
        who = self.who(request) or "?"
        alarm_id, stream = await _fields(request, "alarm_id", "bed")
        when = self.clock()
        alarm = self.ward.active_alarm(stream, alarm_id)
        if alarm is None:
            raise web.HTTPNotFound(text="no such active alarm")
        if self.on_ack is not None:
            problem = await asyncio.get_running_loop().run_in_executor(None, self.on_ack, alarm, stream, who, when)
            if problem is not None:
                raise web.HTTPBadGateway(text=f"not acknowledged: {problem}")
        if self.ward.acknowledge(stream, alarm_id, who, when) is None:
            raise web.HTTPNotFound(text="the alarm ended")
        record = {"t": "ack", "bed": stream, "alarm_id": alarm_id, "by": who, "at": when}
        self.acks.append(record)
        self._broadcast([record, *self.ward.alarm_messages([stream])])
        return web.json_response(record)

    async def _strip(self, request: web.Request) -> web.StreamResponse:
        (alarm_id,) = await _fields(request, "alarm_id")
        found = self.strip(alarm_id) if self.strip is not None else None
        if found is None:
            raise web.HTTPNotFound(text="no strip (yet) for this alarm: it is kept 10 s after the onset")
        return web.json_response(found)

    async def _bed(self, request: web.Request) -> web.StreamResponse:
        """One bed in full for the bed view: vitals, active alarms, heart-rate trend, alarm history."""
        (stream,) = await _fields(request, "bed")
        view = self.ward.bed_view(stream)
        if view is None:
            raise web.HTTPNotFound(text="no such bed")
        self._viewed[stream] = time.monotonic()
        if len(self._viewed) > 64:  # beds viewed long ago are forgotten
            self._viewed = {s: t for s, t in self._viewed.items() if self.viewing(s)}
        return web.json_response(view)

    def viewing(self, stream: str) -> bool:
        """Whether a bed view asked for ``stream`` in the last ``VIEWED_S`` (from any thread)."""
        return time.monotonic() - self._viewed.get(stream, -math.inf) < VIEWED_S

    async def _pause(self, request: web.Request) -> web.StreamResponse:
        self.audio_paused_until = self.clock() + AUDIO_PAUSE_S
        self._broadcast([self._audio()])
        return web.json_response(self._audio())

    # --- feeding the pages -----------------------------------------------------------------------------

    def publish(self, messages: list[dict[str, Any]]) -> None:
        """Send ``messages`` to every open page (from any thread; handed over every ``HAND_OVER_S``, so a
        busy publisher does not wake the server for each message)."""
        if messages:
            self._waiting.append(messages)

    async def _hand_over(self) -> None:
        while True:
            await asyncio.sleep(HAND_OVER_S)
            while self._waiting:
                self._broadcast(self._waiting.popleft())

    def _broadcast(self, messages: list[dict[str, Any]]) -> None:
        if not self._clients:  # no page open: nothing to encode
            return
        for msg in messages:
            text = json.dumps(msg, separators=(",", ":"))
            for queue in self._clients:
                if queue.full():
                    queue.get_nowait()
                    self.dropped += 1
                queue.put_nowait(text)

    # --- running -----------------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> CentralServer:
        self._thread = threading.Thread(target=self._serve, name="central", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the web server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(self.app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            sockets = getattr(site._server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            hand_over = loop.create_task(self._hand_over())
            self._loop = loop
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            hand_over.cancel()
            loop.run_until_complete(asyncio.gather(hand_over, return_exceptions=True))
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10.0)
        self._loop = None
