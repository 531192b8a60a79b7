"""The "monitoring interrupted" watchdog: a bed that sends while nobody analyses it raises a technical alarm.

It needs no worker (it is for exactly the time when there is none): gateways run one (``--watchdog-s``), the
``alarms`` role can too, and any number may run at once. Every ``poll_s`` it reads each partition's lease in
``ecg-owners``. A partition is *analysed* while its lease shows an owner that has caught up (``live``) and
the lease's revision keeps changing (the owner renews it every fraction of a second; the revision not
changing for ``lease_s`` of this watchdog's own monotonic clock means the owner is gone, as for the
standbys). A partition not seen analysed for ``budget_s`` (the failover goal) is *interrupted*: each of its
beds (the subjects ``ecg.part.<p>.<stream>`` of ``ECG_FRAMES``) whose last frame is a data frame stored
within ``recent_s`` raises ``monitoring_interrupted`` (a bed that stopped sending is the worker's "signal
lost", not this). The alarm ends ("analysis resumed") once the partition is analysed again and its
checkpoint has passed the bed's last frame seen at the onset: a new owner has processed the bed's frames.

Several watchdogs, one alarm: the open alarm is a key ``interrupted.<stream>`` of ``ecg-open``, made with
create (one watchdog wins the onset, the others adopt its record) and moved to its end by compare-and-swap
(one watchdog decides the end). Each transition is kept in the key before it is published, published with
the message id ``<alarm_id>/<state>/<sample>`` (a watchdog that finds it unpublished, say after the one that
wrote it died, publishes the same record: stored once), then marked published (the end: the key deleted).
Sample indices are the device's own, from the bed's last stored frame: the onset's names the alarm
(``<stream>:monitoring_interrupted:<sample>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from monitor.cluster._alarms import send_record
from monitor.cluster._layout import (
    FRAMES_STREAM,
    OPEN_BUCKET,
    ClusterLayout,
    bucket_keys,
    decode_envelope,
    ensure_layout,
    subject_token,
    token_stream,
)
from monitor.errors import FrameError
from monitor.protocol import DataFrame, decode_frame
from monitor.vocabulary import ALARM_KINDS, MONITORING_INTERRUPTED

__all__ = ["RESUMED_REASON", "Watchdog", "WatchdogSettings"]

log = logging.getLogger(__name__)

RESUMED_REASON = "analysis resumed"
_PREFIX = "interrupted"


@dataclass(frozen=True)
class WatchdogSettings:
    """``budget_s``: a bed's partition not analysed this long raises the alarm; ``lease_s``: a lease whose
    revision does not change this long has lost its owner (the workers' ``--lease-s``); ``recent_s``: a bed
    whose last frame is older is not sending; ``poll_s``: how often the leases are read."""

    budget_s: float = 10.0
    lease_s: float = 3.0
    recent_s: float = 5.0
    poll_s: float = 0.5


@dataclass
class _Partition:
    revision: int = -1
    changed_at: float = 0.0  # monotonic time this watchdog first saw the revision
    analysed_at: float | None = None  # the last revision change seen with a live owner
    owner: str = ""
    checkpoint: int = 0  # the lease's seq: the last frame whose alarms are published


@dataclass(frozen=True)
class _Bed:
    stream: str
    partition: int
    seq: int  # stream sequence of its last frame
    stored: float  # that frame's store time (epoch seconds)
    sample: int  # one past its last sample
    fs: float | None  # None: the last frame is the stream's end
    boot: str | None


class Watchdog:
    """Raises and ends ``monitoring_interrupted`` for the cluster at ``servers`` (:meth:`run` or :meth:`check`)."""

    def __init__(
        self,
        servers: list[str],
        *,
        layout: ClusterLayout | None = None,
        settings: WatchdogSettings | None = None,
        name: str | None = None,
    ) -> None:
        self.servers = servers
        self.layout = layout or ClusterLayout()
        self.settings = settings or WatchdogSettings()
        self.id = name or f"watchdog-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.raised = 0  # onsets this watchdog decided
        self.ended = 0  # ends this watchdog decided
        self.published = 0  # transitions it stored in ECG_ALARMS (a duplicate of another's not counted)
        self._parts = [_Partition() for _ in range(self.layout.partitions)]
        self._started = time.monotonic()
        self._js: JetStreamContext | None = None
        self._owners: KeyValue | None = None
        self._open: KeyValue | None = None

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Check every ``poll_s`` until ``stop`` is set (a failed check is logged and tried again)."""
        nc: Client = await nats.connect(self.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.25)
        try:
            await self.attach(nc.jetstream(timeout=5.0))
            if ready is not None:
                ready.set()
            while not stop.is_set():
                try:
                    await self.check()
                except (TimeoutError, nats.errors.Error) as exc:
                    log.warning("watchdog %s: %s: %s", self.id, type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_s)
        finally:
            await nc.close()

    async def attach(self, js: JetStreamContext) -> None:
        """Use ``js`` (making the layout if it is missing); the budget counts from now."""
        self._js = js
        self._owners, self._open = await ensure_layout(js, self.layout)
        self._started = time.monotonic()

    # ------------------------------------------------------------ one pass
    async def check(self) -> None:
        """Read the leases, carry on the open alarms (publish, end) and raise the new ones."""
        now = time.monotonic()
        for p in range(self.layout.partitions):
            await self._lease(p, now)
        open_beds: set[str] = set()
        for key in await bucket_keys(self._jsc, OPEN_BUCKET, _PREFIX):
            stream = await self._carry_on(key, now)
            if stream is not None:
                open_beds.add(stream)
        for p in range(self.layout.partitions):
            if self._interrupted(p, now):
                for bed in await self._sending(p, open_beds):
                    await self._raise(bed, now)

    async def _lease(self, p: int, now: float) -> None:
        assert self._owners is not None
        part = self._parts[p]
        try:
            entry = await self._owners.get(f"p{p}")
        except KeyNotFoundError:
            entry = None
        revision = 0 if entry is None else entry.revision or 0
        value: dict[str, Any] = {}
        if entry is not None and entry.value:
            with contextlib.suppress(ValueError):
                loaded = json.loads(entry.value)
                value = loaded if isinstance(loaded, dict) else {}
        first = part.revision < 0
        if revision != part.revision:
            part.revision, part.changed_at = revision, now
            part.owner = str(value.get("owner") or "")
            part.checkpoint = int(value.get("seq") or 0)
            if not first and part.owner and value.get("live"):
                part.analysed_at = now

    def _analysed(self, p: int, now: float) -> bool:
        """Whether ``p`` is analysed now, as seen by this watchdog (a lease renewed since it started)."""
        part = self._parts[p]
        return part.analysed_at is not None and now - part.analysed_at <= self.settings.lease_s

    def _interrupted(self, p: int, now: float) -> bool:
        part = self._parts[p]
        since = part.analysed_at if part.analysed_at is not None else self._started
        return now - since > self.settings.budget_s

    # ------------------------------------------------------------ beds
    async def _sending(self, p: int, skip: set[str]) -> list[_Bed]:
        """The beds of partition ``p`` (but those in ``skip``) whose last frame is a data frame stored within
        ``recent_s``."""
        info = await self._jsc.stream_info(FRAMES_STREAM, subjects_filter=f"ecg.part.{p}.*")
        beds = []
        for subject in sorted(info.state.subjects or {}):
            if token_stream(subject.split(".", 3)[3]) in skip:
                continue
            bed = await self._bed(subject)
            if bed is not None and bed.fs is not None and time.time() - bed.stored <= self.settings.recent_s:
                beds.append(bed)
        return beds

    async def _bed(self, subject: str) -> _Bed | None:
        try:
            msg = await self._jsc.get_last_msg(FRAMES_STREAM, subject)
        except nats.js.errors.NotFoundError:
            return None
        p = int(subject.split(".")[2])
        stream = token_stream(subject.split(".", 3)[3])
        try:
            frame = decode_frame(decode_envelope(msg.data or b""))
        except FrameError as exc:  # a gateway validated it: not expected
            log.warning("watchdog %s: %s: last frame unreadable: %s", self.id, subject, exc)
            return None
        stored = msg.time.timestamp() if msg.time is not None else 0.0
        if isinstance(frame, DataFrame):
            return _Bed(stream, p, msg.seq or 0, stored, frame.start + frame.n, frame.fs, frame.boot)
        return _Bed(stream, p, msg.seq or 0, stored, frame.start, None, frame.boot)

    # ------------------------------------------------------------ transitions
    async def _raise(self, bed: _Bed, now: float) -> None:
        assert self._open is not None and bed.fs is not None
        kind = ALARM_KINDS[MONITORING_INTERRUPTED]
        part = self._parts[bed.partition]
        silent = now - (part.analysed_at if part.analysed_at is not None else self._started)
        record = {
            "alarm_id": f"{bed.stream}:{kind.name}:{bed.sample}",
            "stream": bed.stream,
            "kind": kind.name,
            "state": "onset",
            "onset_sample": bed.sample,
            "sample": bed.sample,
            "fs": bed.fs,
            "text": kind.text,
            "category": kind.category,
            "priority": kind.priority,
            "end_reason": None,
            "details": {"partition": bed.partition, "owner": part.owner or None, "unanalysed_s": round(silent, 1)},
        }
        held = {"record": record, "published": False, "frame_seq": bed.seq, "partition": bed.partition}
        try:
            revision = await self._open.create(self._key(bed.stream), json.dumps(held).encode())
        except (KeyWrongLastSequenceError, nats.js.errors.KeyValueError, nats.js.errors.APIError):
            return  # another watchdog raised it first: carried on from its key at the next check
        self.raised += 1
        log.warning("watchdog %s: %s: monitoring interrupted (partition %d)", self.id, bed.stream, bed.partition)
        await self._publish(self._key(bed.stream), held, revision)

    async def _carry_on(self, key: str, now: float) -> str | None:
        """Carry on the open alarm of ``key``: publish what is unpublished, end it once analysis resumed.
        Returns its bed (None: no alarm open there)."""
        assert self._open is not None
        try:
            entry = await self._open.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            held = json.loads(entry.value)
            record, p = held["record"], int(held["partition"])
        except (ValueError, KeyError, TypeError):
            log.warning("watchdog %s: %s: unreadable, removed", self.id, key)
            await self._open.delete(key, last=entry.revision)
            return None
        revision = entry.revision or 0
        if not held.get("published"):
            revision = await self._publish(key, held, revision)
            if revision < 0:
                return None if record["state"] == "end" else str(record["stream"])
        if record["state"] == "onset" and 0 <= p < len(self._parts) and self._resumed(p, held, now):
            bed = await self._bed(f"ecg.part.{p}.{subject_token(record['stream'])}")
            sample = record["sample"] if bed is None else bed.sample
            end = {**record, "state": "end", "sample": sample, "end_reason": RESUMED_REASON}
            ending = {**held, "record": end, "published": False}
            try:
                revision = await self._open.update(key, json.dumps(ending).encode(), last=revision)
            except nats.js.errors.APIError as exc:
                if not _changed_first(exc):
                    raise
                return str(record["stream"])  # another watchdog ends it
            self.ended += 1
            log.warning("watchdog %s: %s: analysis resumed", self.id, record["stream"])
            await self._publish(key, ending, revision)
            return None
        return str(record["stream"])

    def _resumed(self, p: int, held: dict[str, Any], now: float) -> bool:
        return self._analysed(p, now) and self._parts[p].checkpoint >= int(held.get("frame_seq") or 0)

    async def _publish(self, key: str, held: dict[str, Any], revision: int) -> int:
        """Publish the held transition, then mark it published (an end: delete the key). Returns the key's
        revision, -1 once it is gone (or when another watchdog changed it first)."""
        assert self._open is not None
        record = held["record"]
        if await send_record(self._jsc, record, self.id, int(held["partition"])):
            self.published += 1
        try:
            if record["state"] == "end":
                await self._open.delete(key, last=revision)
                return -1
            return await self._open.update(key, json.dumps({**held, "published": True}).encode(), last=revision)
        except nats.js.errors.APIError as exc:
            if not _changed_first(exc):
                raise
            return -1

    @staticmethod
    def _key(stream: str) -> str:
        return f"{_PREFIX}.{subject_token(stream)}"

    @property
    def _jsc(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("watchdog not attached: call run() or attach() first")
        return self._js


def _changed_first(exc: nats.js.errors.APIError) -> bool:
    """Whether a compare-and-swap failed because the key changed first (another watchdog wrote it)."""
    return isinstance(exc, KeyWrongLastSequenceError) or exc.err_code in (10071, 10164)  # "wrong last sequence"
