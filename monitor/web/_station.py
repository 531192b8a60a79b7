"""A running central station: the ward, one bus reader per monitor, the web server (``ecg-central``, ``--web``)."""

from __future__ import annotations

import logging
import math
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq

from monitor.errors import ConfigError
from monitor.outputs import AlarmLog, read_strip
from monitor.transport import CurveConfig
from monitor.web._feed import BusFeed, LocalFeed
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
        alarm_log: str | Path | None = None,
        on_ack: Callable[[dict[str, Any], str, str, float], str | None] | None = None,
    ) -> None:
        """``alarm_log``: review strips are read from it. An acknowledgement goes to the monitor whose alarm it
        is (it records it in its own alarm log and publishes it on its bus), unless ``on_ack`` takes it (the
        embedded monitor, ``--web``)."""
        self.ward = WardState()
        self.log = AlarmLog(alarm_log, run_id=f"central-{os.getpid()}-{secrets.token_hex(4)}") if alarm_log else None
        self.server = CentralServer(
            self.ward,
            host,
            port,
            token=token,
            on_ack=on_ack or self._forward_ack,
            strip=self._strip if self.log is not None else None,
        )
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

    def local_feed(self) -> LocalFeed:
        """A tap that shows this process's own monitor (``ecg-monitor --web``): add it to its bus's taps."""
        return LocalFeed(self.ward, self.server.publish)

    def viewing(self, stream: str) -> bool:
        """Whether a page's bed view shows ``stream`` now (it asks for the bed every few seconds)."""
        return self.server.viewing(stream)

    def _forward_ack(self, alarm: dict[str, Any], stream: str, who: str, when: float) -> str | None:
        """To the monitor that raised the alarm (the bus its bed is read from): it keeps it in its alarm log and
        publishes it, so every station shows it."""
        source = self.ward.source_of(stream)
        feed = next((f for f in self.feeds if f.endpoint == source), None)
        if feed is None:
            return f"no monitor bus for bed {stream!r}"
        return feed.acknowledge(stream, str(alarm["id"]), who, when)

    def _strip(self, alarm_id: str) -> dict[str, Any] | None:
        """An alarm's review strip for the page: decimated to 125 values a second (drawing needs no more)."""
        assert self.log is not None
        strip = read_strip(self.log, alarm_id)
        if strip is None:
            return None
        step = max(1, int(strip.fs // 125))
        values = [None if not math.isfinite(v) else round(float(v), 4) for v in strip.values[::step]]
        return {
            "alarm_id": strip.alarm_id,
            "bed": strip.stream,
            "kind": strip.kind,
            "lead": strip.lead,
            "fs": strip.fs / step,
            "sample": strip.sample,
            "onset_sample": strip.onset_sample,
            "source_fs": strip.fs,
            "values": values,
        }

    def close(self) -> None:
        for feed in self.feeds:
            feed.stop()
        self.server.stop()
        if self.log is not None:
            self.log.close()
