"""A running central station: the ward, one bus reader per monitor, the web server (``ecg-central``, ``--web``)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import zmq

from monitor.errors import ConfigError
from monitor.transport import CurveConfig
from monitor.web._feed import BusFeed
from monitor.web._server import CentralServer
from monitor.web._ward import WardState

__all__ = ["Station", "read_token"]

log = logging.getLogger(__name__)


def read_token(path: str | Path | None) -> str | None:
    """The station token from a file only this user can read (``ConfigError`` otherwise); ``None``: no file."""
    if path is None:
        return None
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--web-token-file {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"--web-token-file {path}: others can read it (chmod 600 {path})")
    if len(text) < 16:
        raise ConfigError(f"--web-token-file {path}: the token is shorter than 16 characters")
    return text


class Station:
    """Serve the beds of the buses at ``endpoints`` on ``http://host:port/`` until :meth:`close`."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, str | None]],
        host: str,
        port: int,
        *,
        token: str | None = None,
        curve: CurveConfig | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self.ward = WardState()
        self.server = CentralServer(self.ward, host, port, token=token)
        self.feeds: list[BusFeed] = []
        self._endpoints = list(endpoints)
        self._curve = curve
        self._ctx = context

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}/"

    def start(self) -> Station:
        """Bind the web server, then start reading the buses (a bad endpoint raises before anything runs)."""
        self.server.start()
        try:
            for endpoint, snapshot in self._endpoints:
                self.connect(endpoint, snapshot)
        except BaseException:
            self.close()
            raise
        log.info("central station on %s (pid %d)", self.url, os.getpid())
        return self

    def connect(self, endpoint: str, snapshot: str | None = None) -> None:
        """Also show the beds of the bus at ``endpoint`` (its snapshot endpoint: ``snapshot``, else derived)."""
        feed = BusFeed(
            endpoint, self.ward, self.server.publish, curve=self._curve, snapshot_endpoint=snapshot, context=self._ctx
        )
        self.feeds.append(feed.start())

    def close(self) -> None:
        for feed in self.feeds:
            feed.stop()
        self.server.stop()
