"""Alarm transitions to the replicated ``ECG_ALARMS`` stream, open alarms in the ``ecg-open`` bucket, and the
durable reader of the stream (bridges, the alarm log, tests, the failover benchmark).

One bed's open alarms survive the worker analysing it: each onset is published (message id
``<alarm_id>/<state>/<sample>``, so a transition published twice within the duplicate window is stored once)
and kept in ``ecg-open``; its end is published and the key deleted. A new owner first rebuilds the partition's
monitors from a replay window with publishing held back (:attr:`AlarmPublisher.live` False), then
:meth:`AlarmPublisher.adopt` the open alarms of the bucket: an alarm of the same (stream, kind) still active
in the rebuilt monitor goes on under its published id (its updates and its end carry that id), one raised
again later is not raised twice, and one whose condition is gone when the partition has caught up is ended
("ended while its worker was replaced"). So an open alarm is neither lost nor raised twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from monitor.alarms import AlarmEvent
from monitor.cluster._layout import ALARMS_STREAM, OPEN_BUCKET, alarm_subject, bucket_keys, subject_token
from monitor.outputs import Sink

__all__ = [
    "REPLACED_REASON",
    "AlarmCollector",
    "AlarmPublisher",
    "AlarmReader",
    "Delivery",
    "alarm_record",
    "bus_body",
    "send_record",
]

log = logging.getLogger(__name__)

REPLACED_REASON = "ended while its worker was replaced"


def alarm_record(event: AlarmEvent, alarm_id: str | None = None, onset_sample: int | None = None) -> dict[str, Any]:
    """An alarm transition as the JSON the stream carries (``alarm_id``/``onset_sample``: the published ones)."""
    return {
        "alarm_id": alarm_id or event.alarm_id,
        "stream": event.stream,
        "kind": event.kind,
        "state": event.state,
        "onset_sample": event.onset_sample if onset_sample is None else onset_sample,
        "sample": event.sample,
        "fs": event.fs,
        "text": event.text,
        "category": event.category,
        "priority": event.priority,
        "end_reason": event.end_reason,
        "details": dict(event.details),
    }


class AlarmCollector(Sink):
    """Keeps the monitor's alarm transitions until the partition runner publishes them."""

    name = "cluster"

    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    def on_alarm(self, event: AlarmEvent) -> None:
        self.events.append(event)

    def take(self) -> list[AlarmEvent]:
        out, self.events = self.events, []
        return out


@dataclass
class _Open:
    record: dict[str, Any]
    local_ids: set[str] = field(default_factory=set)
    ending: dict[str, Any] | None = None  # the end being published for an orphan (the same on a retry)


class AlarmPublisher:
    """Publishes one partition's alarm transitions and keeps its open alarms in the bucket."""

    def __init__(self, js: JetStreamContext, open_kv: KeyValue, partition: int, worker: str) -> None:
        self.js = js
        self.kv = open_kv
        self.partition = partition
        self.worker = worker
        self.live = False
        self.published = 0
        self._open: dict[tuple[str, str], _Open] = {}  # (stream, kind) -> the published open alarm
        self._orphans: set[tuple[str, str]] = set()  # adopted, not active after the rebuild: end if not raised again

    def _key(self, stream: str, kind: str) -> str:
        return f"p{self.partition}.{subject_token(stream)}.{kind}"

    async def adopt(self, active: Callable[[str, str], str | None]) -> int:
        """Take over the partition's open alarms from the bucket; ``active(stream, kind)`` is the rebuilt
        monitor's alarm id of that kind if it is active. Return how many were adopted."""
        keys = await bucket_keys(self.js, OPEN_BUCKET, f"p{self.partition}")
        for key in keys:
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value is None:
                continue
            record = json.loads(entry.value)
            pair = (record["stream"], record["kind"])
            held = _Open(record)
            local = active(*pair)
            if local is not None:
                held.local_ids.add(local)
            else:
                self._orphans.add(pair)
            self._open[pair] = held
        self.live = True
        return len(self._open)

    async def publish(self, events: list[AlarmEvent]) -> None:
        """Publish ``events`` (in order) if live; while rebuilding they are dropped (published before)."""
        if not self.live:
            return
        for event in events:
            pair = (event.stream, event.kind)
            held = self._open.get(pair)
            if event.state == "onset":
                if held is not None:  # raised before the takeover: the same episode goes on
                    held.local_ids.add(event.alarm_id)
                    self._orphans.discard(pair)
                    continue
                record = alarm_record(event)
                await self._send(record)
                await self.kv.put(self._key(*pair), json.dumps(record).encode())
                self._open[pair] = _Open(record, {event.alarm_id})
            elif held is not None and event.alarm_id in held.local_ids:
                record = alarm_record(event, held.record["alarm_id"], held.record["onset_sample"])
                await self._send(record)
                if event.state == "end":
                    await self.kv.delete(self._key(*pair))
                    del self._open[pair]
            # else: an update/end of an episode whose onset fell in the rebuild window and was ended before:
            # it was published by the previous owner
        # (state changes only after the stream and the bucket took them: an event whose publishing failed
        # can be published again, under the same message id)

    async def end_orphans(self, sample_of: Callable[[str], int | None]) -> int:
        """End each adopted alarm the rebuilt monitor did not raise again (call once the partition caught up)."""
        ended = 0
        for pair in sorted(self._orphans):
            held = self._open.get(pair)
            if held is None:
                self._orphans.discard(pair)
                continue
            if held.ending is None:  # built once: a retry sends the same message, stored once
                sample = sample_of(pair[0])
                held.ending = {**held.record, "state": "end", "end_reason": REPLACED_REASON}
                if sample is not None:  # else the last one published
                    held.ending["sample"] = sample
            await self._send(held.ending)
            await self.kv.delete(self._key(*pair))
            del self._open[pair]
            self._orphans.discard(pair)
            ended += 1
        return ended

    async def _send(self, record: dict[str, Any]) -> None:
        await send_record(self.js, record, self.worker, self.partition)
        self.published += 1


async def send_record(js: JetStreamContext, record: dict[str, Any], worker: str, partition: int) -> bool:
    """Publish one transition to ``ECG_ALARMS`` (message id ``<alarm_id>/<state>/<sample>``, so the same
    transition published again within the duplicate window is stored once); True if it was stored now."""
    record = {**record, "worker": worker, "partition": partition}
    msg_id = f"{record['alarm_id']}/{record['state']}/{record['sample']}"
    ack = await js.publish(
        alarm_subject(record["stream"]),
        json.dumps(record).encode(),
        stream=ALARMS_STREAM,
        headers={"Nats-Msg-Id": msg_id},
    )
    return not ack.duplicate


@dataclass
class Delivery:
    """One transition as the durable consumer delivered it: the record, its stream sequence and store time;
    :meth:`ack` once it is handled (a delivery not acknowledged comes again after the consumer's ack wait)."""

    record: dict[str, Any] | None  # None: not a JSON object (counted by the reader, never valid)
    seq: int
    time: float
    redelivered: bool
    msg: Any = field(repr=False)

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self) -> None:
        await self.msg.nak()


def bus_body(delivery: Delivery) -> dict[str, Any]:
    """A delivered transition as an alarm body of the alert bus (``monitor.protocol.check_body`` checks it, the
    alarm log stores it): ``seq`` the stream sequence, ``time`` the store time, ``monitor`` the worker."""
    record = delivery.record or {}
    return {
        **record,
        "schema": 1,
        "type": "alarm",
        "seq": delivery.seq,
        "time": delivery.time,
        "monitor": str(record.get("worker") or "cluster"),
        "snapshot": False,
    }


class AlarmReader:
    """A durable reader of ``ECG_ALARMS``: a consumer named ``durable`` that the server keeps, so a reader
    that was away gets every transition it missed when it comes back. :meth:`read` acknowledges what it
    returns; :meth:`fetch` leaves that to the caller (acknowledge once handled: at-least-once delivery).
    ``ack_wait``: how long a delivery not acknowledged waits before it comes again (set when the consumer
    is made). A consumer with no leader for the moment (a server restarting, an election: 503 or no
    responders) is waited out, counted in ``unavailable``; one deleted (404) is made again."""

    def __init__(self, js: JetStreamContext, durable: str, *, ack_wait: float = 30.0) -> None:
        self.js = js
        self.durable = durable
        self.ack_wait = ack_wait
        self.rejected = 0
        self.unavailable = 0
        self._sub: Any = None

    async def open(self) -> None:
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait)
        self._sub = await self.js.pull_subscribe(
            "ecg.alarms.*", durable=self.durable, stream=ALARMS_STREAM, config=config
        )

    async def fetch(self, batch: int = 256, timeout: float = 1.0) -> list[Delivery]:
        """The next deliveries, in stream order (none after ``timeout``), not acknowledged."""
        if self._sub is None:
            await self.open()
        try:
            msgs = await self._sub.fetch(batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):  # fetch raises either when nothing came
            return []
        except (ServiceUnavailableError, nats.errors.NoRespondersError):
            self.unavailable += 1
            log.warning("alarm stream: consumer %s unavailable for now; trying again", self.durable)
            await asyncio.sleep(timeout)  # as if nothing came
            return []
        except NotFoundError:
            log.warning("alarm stream: consumer %s gone; making it again", self.durable)
            await self.close()
            return []
        out = []
        for msg in msgs:
            meta = msg.metadata
            try:
                record = json.loads(msg.data)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                self.rejected += 1
                log.warning("alarm stream: message %s is not a JSON object", meta.sequence.stream)
                record = None
            stamp = meta.timestamp.timestamp() if meta.timestamp is not None else 0.0
            out.append(Delivery(record, meta.sequence.stream, stamp, meta.num_delivered > 1, msg))
        return out

    async def read(self, batch: int = 256, timeout: float = 1.0) -> list[dict[str, Any]]:
        """The next transitions (none after ``timeout``), each acknowledged once parsed (others skipped)."""
        out = []
        for delivery in await self.fetch(batch, timeout):
            if delivery.record is not None:
                out.append(delivery.record)
            await delivery.ack()
        return out

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
