"""A rate-limited log line per (stream, rejection reason)."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["RejectionLog"]

_LOG = logging.getLogger("monitor.ingest")


class RejectionLog:
    """Logs rejections: the first of a (stream, reason) at once, then at most one line per
    ``interval`` seconds of the injected ``clock``, with the count since the last line.

    Stream ``""`` holds messages rejected before they reach a stream (their ids are not
    trusted to name anything). Entries are bounded by the streams the ingest keeps:
    :meth:`forget` drops a stream's.
    """

    def __init__(self, clock: Callable[[], float], logger: logging.Logger = _LOG, interval: float = 60.0) -> None:
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self._entries: dict[tuple[str, str], list[float]] = {}  # (stream, reason) -> [last line at, count since]

    def hit(self, stream: str, reason: str, count: int = 1) -> None:
        now = self.clock()
        entry = self._entries.get((stream, reason))
        where = f"stream {stream!r}" if stream else "unattributed messages"
        if entry is None:
            self._entries[(stream, reason)] = [now, 0.0]
            self.logger.warning("%s: message rejected (%s)", where, reason)
            return
        entry[1] += count
        if now - entry[0] >= self.interval:
            self.logger.warning(
                "%s: %d more message(s) rejected (%s) in the last %.0f s", where, int(entry[1]), reason, now - entry[0]
            )
            entry[0] = now
            entry[1] = 0.0

    def forget(self, stream: str) -> None:
        for key in [k for k in self._entries if k[0] == stream]:
            del self._entries[key]
