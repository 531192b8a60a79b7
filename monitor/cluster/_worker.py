"""An analysis worker: owns a fair share of the partitions through leases in the ``ecg-owners`` bucket.

Ownership is a lease per partition (key ``p<N>``), renewed by compare-and-swap every ``renew_s``; the value
carries the owner and the checkpoint (the last frame whose alarms are published). A worker that does not see a
lease's revision change for ``lease_s`` (its own monotonic clock: no clock is shared between machines) takes it
over with a compare-and-swap on the revision it saw, so two standbys never both win, and an old owner that
comes back fails its next renewal and stops (fencing). Every worker is the standby of every partition it
does not own. Workers announce themselves under ``member.<id>``; each holds at most ``ceil(P / live workers)``
partitions and releases the rest (owner ``""``: taken at once, no expiry to wait for), so two workers share.

Measurement (opt-in, off by default: ``WorkerSettings.stats_s`` or the environment's ``ECG_MONITOR_STATS_S``
> 0): every ``stats_s`` the worker publishes one JSON message on the core subject ``ecg.stats.worker`` (not
stored): its partitions, frames fetched, samples analysed, and each beat labelled since the last message as
``[stream, ready_sample, labelled (epoch s), ready -> label (ms)]`` (at most 100,000 a message; more are
counted in ``beats_dropped``). ``benchmarks/load.py --cluster`` reads it.

Every ``report_s`` a worker publishes what it has analysed, per bed the samples through its monitor, as core
NATS (no JetStream: it goes on while streams elect leaders) on ``ecg.progress.<id>``; nothing reads it back,
so it changes no decision (the failover benchmark draws its timeline from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats
import zmq
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from engine import BeatClassifier, LabeledBeat
from monitor.app import MonitorConfig
from monitor.cluster._layout import OWNERS_BUCKET, ClusterLayout, bucket_keys, ensure_layout, subject_token
from monitor.cluster._partition import Checkpoint, PartitionRunner
from monitor.errors import ConfigError
from monitor.outputs import Sink

__all__ = ["PROGRESS_SUBJECT", "STATS_SUBJECT", "BeatTimes", "Worker", "WorkerSettings", "lease_of"]

log = logging.getLogger(__name__)

PROGRESS_SUBJECT = "ecg.progress"  # + ".<worker id>": per bed, the samples analysed (core NATS, JSON)


@dataclass(frozen=True)
class WorkerSettings:
    """Lease timing and the replay window a new owner rebuilds from."""

    lease_s: float = 3.0
    renew_s: float = 0.5
    window_s: float = 45.0
    report_s: float = 0.25
    stats_s: float = 0.0  # > 0: publish measurement messages (see the module docstring)


STATS_SUBJECT = "ecg.stats.worker"


def _stats_s(settings: WorkerSettings) -> float:
    text = os.environ.get("ECG_MONITOR_STATS_S", "")
    if settings.stats_s > 0 or not text:
        return settings.stats_s
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"ECG_MONITOR_STATS_S must be a number of seconds >= 0, got {text!r}")
    return value


class BeatTimes(Sink):
    """Each labelled beat's stream, ready sample, wall time and ready -> label latency (measurement only)."""

    name = "beat-times"
    cap = 100_000

    def __init__(self) -> None:
        self.rows: list[tuple[str, int | None, float, float]] = []
        self.dropped = 0

    def on_beats(self, beats: Sequence[LabeledBeat], now: float) -> None:
        wall = time.time()
        for lb in beats:
            b = lb.beat
            if len(self.rows) < self.cap:
                self.rows.append((b.stream, b.ready_sample, round(wall, 4), round(1000.0 * (now - b.ready_at), 3)))
            else:
                self.dropped += 1

    def take(self) -> tuple[list[tuple[str, int | None, float, float]], int]:
        out, dropped = self.rows, self.dropped
        self.rows, self.dropped = [], 0
        return out, dropped


def lease_of(value: bytes | None) -> dict[str, Any]:
    """A lease value as a dict (an unreadable one as a free lease at the start)."""
    try:
        lease = json.loads(value or b"{}")
    except ValueError:
        lease = {}
    return lease if isinstance(lease, dict) else {}


async def read_leases(servers: list[str], partitions: int) -> list[dict[str, Any]]:
    """Every partition's current lease (``{}`` where there is none), read from the owners bucket."""
    nc = await nats.connect(servers)
    try:
        kv = await nc.jetstream(timeout=10.0).key_value(OWNERS_BUCKET)
        out = []
        for p in range(partitions):
            try:
                out.append(lease_of((await kv.get(f"p{p}")).value))
            except KeyNotFoundError:
                out.append({})
        return out
    finally:
        await nc.close()


@dataclass
class _Seen:
    revision: int
    at: float  # monotonic time the revision was first seen


class Worker:
    """Connects to ``servers``, makes the layout if missing, and analyses its share of the partitions."""

    def __init__(
        self,
        servers: list[str],
        *,
        layout: ClusterLayout | None = None,
        settings: WorkerSettings | None = None,
        config: MonitorConfig | None = None,
        classifier: BeatClassifier | None = None,
        name: str | None = None,
    ) -> None:
        self.servers = servers
        self.layout = layout or ClusterLayout()
        self.settings = settings or WorkerSettings()
        self.config = config or MonitorConfig(engine_thread=False)
        self.classifier = classifier
        self.id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.runners: dict[int, PartitionRunner] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._revs: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._seen: dict[str, _Seen] = {}
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._nc: Client | None = None
        self._js: Any = None
        self._owners: KeyValue | None = None
        self._open: KeyValue | None = None
        self.stats_s = _stats_s(self.settings)
        self._beat_times = BeatTimes() if self.stats_s > 0 else None

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: claim, renew, release, analyse. On stop, release what it owns."""
        self._nc = await nats.connect(self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
        js = self._js = self._nc.jetstream(timeout=5.0)
        self._owners, self._open = await ensure_layout(js, self.layout)
        stats_at = time.monotonic()
        reporting = asyncio.create_task(self._report(stop))
        try:
            while not stop.is_set():
                try:
                    await self._tick(js)
                    if self._beat_times is not None and time.monotonic() - stats_at >= self.stats_s:
                        stats_at = time.monotonic()
                        await self._publish_stats(self._beat_times)
                except (TimeoutError, nats.errors.Error) as exc:
                    log.warning("worker %s: %s: %s", self.id, type(exc).__name__, exc)
                    self._seen.clear()  # a lease counts as silent only while this worker can read it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.renew_s)
            try:  # hand the partitions over at once (bounded: with no server left, the leases just expire)
                await asyncio.wait_for(self._leave(), 5.0)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("worker %s: leaving: %s: %s", self.id, type(exc).__name__, exc)
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting
            for p in list(self.runners):
                await self._drop(p)
            await self._nc.close()
            self._ctx.term()

    async def _publish_stats(self, times: BeatTimes) -> None:
        assert self._nc is not None
        beats, dropped = times.take()
        runners = list(self.runners.values())
        body = {
            "worker": self.id,
            "wall": time.time(),
            "partitions": sorted(self.runners),
            "frames": sum(r.frames for r in runners),
            "samples": sum(p.samples_end for r in runners for p in r.monitor.ingest.streams.values()),
            "beats": beats,
            "beats_dropped": dropped,
        }
        await self._nc.publish(STATS_SUBJECT, json.dumps(body).encode())

    async def _leave(self) -> None:
        assert self._owners is not None
        for p in list(self.runners):
            await self._release(p)
        await self._owners.delete(f"member.{self.id}")

    async def _report(self, stop: asyncio.Event) -> None:
        assert self._nc is not None
        subject = f"{PROGRESS_SUBJECT}.{subject_token(self.id)}"
        while not stop.is_set():
            beds = {
                s: int(proc.samples_end) for r in self.runners.values() for s, proc in r.monitor.ingest.streams.items()
            }
            report = {"worker": self.id, "at": time.time(), "beds": beds}
            with contextlib.suppress(nats.errors.Error):  # a full reconnect buffer: this report is skipped
                await self._nc.publish(subject, json.dumps(report).encode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.report_s)

    # ------------------------------------------------------------ leases
    def _changed(self, key: str, revision: int, now: float) -> float:
        seen = self._seen.get(key)
        if seen is None or seen.revision != revision:
            self._seen[key] = seen = _Seen(revision, now)
        return now - seen.at

    async def _live_members(self, now: float) -> int:
        assert self._owners is not None
        await self._owners.put(
            f"member.{self.id}", json.dumps({"at": time.time(), "own": sorted(self.runners)}).encode()
        )
        keys = await bucket_keys(self._js, OWNERS_BUCKET, "member")
        live = 1
        for key in keys:
            if key == f"member.{self.id}":
                continue
            try:
                entry = await self._owners.get(key)
            except KeyNotFoundError:
                continue
            if self._changed(key, entry.revision or 0, now) <= self.settings.lease_s:
                live += 1
        return live

    async def _tick(self, js: nats.js.JetStreamContext) -> None:
        assert self._owners is not None
        now = time.monotonic()
        share = math.ceil(self.layout.partitions / await self._live_members(now))
        for p in list(self.runners):  # renew (a failed renewal: lost, stop)
            await self._write(p, self._lease_value(p))
        while len(self.runners) > share:
            await self._release(max(self.runners))
        for p in range(self.layout.partitions):
            if p in self.runners or len(self.runners) >= share:
                continue
            key = f"p{p}"
            try:
                entry = await self._owners.get(key)
            except KeyNotFoundError:
                entry = None
            if entry is None or entry.value is None:
                await self._claim(js, p, None, {})
                continue
            lease = lease_of(entry.value)
            idle = self._changed(key, entry.revision or 0, now)
            if not lease.get("owner") or idle > self.settings.lease_s:
                await self._claim(js, p, entry.revision, lease)

    def _lease_value(self, p: int, owner: str | None = None) -> dict[str, Any]:
        runner = self.runners[p]
        cp = runner.checkpoint
        return {
            "owner": self.id if owner is None else owner,
            "seq": cp.seq,
            "time": cp.time,
            "live": runner.caught_up_at is not None,
            "claimed_at": runner.claimed_wall,
            "live_at": runner.live_wall,
            "streams": runner.streams[:256],
        }

    async def _write(self, p: int, value: dict[str, Any]) -> bool:
        """Compare-and-swap the lease of ``p``; False (and the partition dropped) if someone else has it."""
        assert self._owners is not None
        async with self._locks.setdefault(p, asyncio.Lock()):
            if p not in self.runners:
                return False
            try:
                self._revs[p] = await self._owners.update(f"p{p}", json.dumps(value).encode(), last=self._revs[p])
                return True
            except KeyWrongLastSequenceError:
                log.warning("worker %s: partition %d: lease lost (taken over)", self.id, p)
        await self._drop(p)
        return False

    async def _claim(self, js: nats.js.JetStreamContext, p: int, revision: int | None, lease: dict[str, Any]) -> None:
        assert self._owners is not None and self._open is not None
        resume = Checkpoint(int(lease.get("seq", 0)), float(lease.get("time", 0.0)))
        value = json.dumps({"owner": self.id, "seq": resume.seq, "time": resume.time, "live": False}).encode()
        try:
            if revision is None:
                rev = await self._owners.create(f"p{p}", value)
            else:
                rev = await self._owners.update(f"p{p}", value, last=revision)
        except (KeyWrongLastSequenceError, nats.js.errors.KeyValueError, nats.js.errors.APIError):
            return  # another standby won
        self._revs[p] = rev

        async def save(cp: Checkpoint) -> None:
            await self._write(p, self._lease_value(p))

        runner = PartitionRunner(
            p,
            js,
            self._open,
            self.id,
            resume,
            config=self.config,
            classifier=self.classifier,
            context=self._ctx,
            window_s=self.settings.window_s,
            save=save,
        )
        if self._beat_times is not None:
            runner.monitor.add_sink(self._beat_times)
        self.runners[p] = runner
        self._tasks[p] = asyncio.create_task(self._analyse(p, runner))
        log.info("worker %s: partition %d claimed (from %s, seq %d)", self.id, p, lease.get("owner") or "-", resume.seq)

    async def _analyse(self, p: int, runner: PartitionRunner) -> None:
        while self.runners.get(p) is runner:
            try:
                await runner.step()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("worker %s: partition %d: %s: %s", self.id, p, type(exc).__name__, exc)
                await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(0)

    async def _release(self, p: int) -> None:
        if p in self.runners and await self._write(p, self._lease_value(p, owner="")):
            log.info("worker %s: partition %d released", self.id, p)
            await self._drop(p)

    async def _drop(self, p: int) -> None:
        runner = self.runners.pop(p, None)
        task = self._tasks.pop(p, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # its errors were logged
                await task
        if runner is not None:
            await runner.close()
