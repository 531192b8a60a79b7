"""Publishing records over ZeroMQ as bedside devices would (wire format v2: each stream of a
replay run sends under a fresh random 64-bit boot id)."""

from __future__ import annotations

import heapq
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import zmq

from monitor.errors import ConfigError
from monitor.protocol import encode_data, encode_eos
from replay._records import LoadedRecord, RecordRef, load_record

__all__ = ["MAX_CHUNK_S", "ReplayConfig", "Replayer", "parse_speed", "stream_ids"]

log = logging.getLogger(__name__)

#: Longest chunk a replay sends in one frame (seconds).
MAX_CHUNK_S = 10.0


def parse_speed(text: str | float | None) -> float | None:
    """``"max"`` (or None) -> None (unpaced); else a positive finite multiple of real time."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "max"):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"--speed must be a positive number or 'max', got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--speed must be a positive number or 'max', got {text!r}")
    return value


@dataclass(frozen=True)
class ReplayConfig:
    """``speed`` None means as fast as the receiver takes it."""

    chunk_s: float = 0.1
    speed: float | None = 1.0
    loop: bool = False
    stagger_s: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.chunk_s) and 0 < self.chunk_s <= MAX_CHUNK_S):
            raise ConfigError(f"chunk_s must be in (0, {MAX_CHUNK_S:g}] seconds, got {self.chunk_s!r}")
        if self.speed is not None:
            parse_speed(self.speed)
        if not (math.isfinite(self.stagger_s) and self.stagger_s >= 0):
            raise ConfigError(f"stagger_s must be >= 0, got {self.stagger_s!r}")


def stream_ids(refs: Sequence[RecordRef]) -> list[str]:
    """One stream id per record: its name, suffixed ``-2``, ``-3``... when repeated."""
    seen: dict[str, int] = {}
    out = []
    for ref in refs:
        k = seen.get(ref.name, 0) + 1
        seen[ref.name] = k
        out.append(ref.name if k == 1 else f"{ref.name}-{k}")
    return out


class _Stream:
    def __init__(self, sid: str, rec: LoadedRecord, chunk_s: float) -> None:
        self.sid = sid
        self.rec = rec
        self.chunk = max(1, round(chunk_s * rec.fs))
        self.seq = 0
        self.pos = 0  # next sample of the record
        self.sent = 0  # samples sent in all loops (the stream's sample index)
        self.chunk_dur = self.chunk / rec.fs
        self.boot = secrets.randbits(64)  # this run of the simulated device


class Replayer:
    """Publishes records on a PUSH socket, paced against absolute target times.

    Chunk ``k`` of a stream is sent at ``t0 + offset + (k + 1) * chunk / fs / speed``,
    the moment its last sample would have been recorded: targets come from the
    start time, never from the previous send, so drift does not build up. With
    ``speed=None`` the chunks of all streams are interleaved in time order and
    sent as fast as the socket takes them (PUSH blocks at its high-water mark, so
    nothing is lost).
    """

    def __init__(
        self,
        refs: Sequence[RecordRef],
        config: ReplayConfig,
        *,
        ids: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        wait: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        if not refs:
            raise ConfigError("no records to replay")
        self.refs = list(refs)
        self.ids = list(ids) if ids is not None else stream_ids(self.refs)
        self.config = config
        self.clock = clock
        self.wall = wall
        self._wait = wait or (lambda event, seconds: event.wait(seconds))
        self.frames_sent = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self, socket: zmq.Socket[bytes], stop: threading.Event) -> None:
        """Publish until every record is sent (or forever with ``loop``) or ``stop`` is set."""
        try:
            self._run(socket, stop)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()

    def start_thread(
        self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, stop: threading.Event
    ) -> threading.Thread:
        """Run in a background thread with its own PUSH socket connected to ``endpoint``.

        A failure is kept in :attr:`error` for the owner to raise; it is never
        swallowed.
        """

        def target() -> None:
            sock = ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 2000)
            sock.connect(endpoint)
            try:
                self.run(sock, stop)
            except BaseException:
                log.debug("replay thread failed", exc_info=True)
            finally:
                sock.close()

        thread = threading.Thread(target=target, name="ecg-replay", daemon=True)
        thread.start()
        return thread

    def _send(self, socket: zmq.Socket[bytes], parts: list[bytes], stop: threading.Event) -> bool:
        while not stop.is_set():
            if socket.poll(100, zmq.POLLOUT):
                try:
                    socket.send_multipart(parts, flags=zmq.NOBLOCK)
                    self.frames_sent += 1
                    return True
                except zmq.Again:
                    continue
        return False

    def _run(self, socket: zmq.Socket[bytes], stop: threading.Event) -> None:
        cfg = self.config
        streams = []
        for sid, ref in zip(self.ids, self.refs, strict=True):
            if stop.is_set():  # loading many records takes a while: stop between them
                return
            streams.append(_Stream(sid, load_record(ref), cfg.chunk_s))
        t0 = self.clock()
        speed = cfg.speed
        # heap of (target time in record seconds from t0, order, stream index)
        heap: list[tuple[float, int, int]] = []
        for i, s in enumerate(streams):
            heapq.heappush(heap, (i * cfg.stagger_s + s.chunk_dur, i, i))
        while heap and not stop.is_set():
            target, _, i = heapq.heappop(heap)
            s = streams[i]
            if speed is not None:
                delay = t0 + target / speed - self.clock()
                if delay > 0 and self._wait(stop, delay):
                    return
            rec = s.rec
            block = rec.samples[s.pos : s.pos + s.chunk]
            description = rec.signal_description()
            parts = encode_data(s.sid, s.seq, s.sent, rec.fs, block, **description, sent=self.wall(), boot=s.boot)
            if not self._send(socket, parts, stop):
                return
            s.seq += 1
            s.pos += block.shape[0]
            s.sent += block.shape[0]
            if s.pos >= rec.n:
                if not cfg.loop:
                    if not self._send(socket, encode_eos(s.sid, s.seq, s.sent, sent=self.wall(), boot=s.boot), stop):
                        return
                    continue
                s.pos = 0
            nxt = min(s.chunk, rec.n - s.pos)
            heapq.heappush(heap, (target + nxt / rec.fs, i, i))
