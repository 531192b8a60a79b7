"""One owned partition: its frames from JetStream through a :class:`~monitor.app.Monitor`, its alarms out.

The monitor is the embedded one, driven without sockets (``Monitor.process``), in lockstep: every decision
depends only on the samples, so a new owner that replays the same frames reaches the same state. A new owner
starts ``window_s`` before the checkpoint it took over (the last frame whose alarms the previous owner had
published) and rebuilds: frames up to the checkpoint are analysed with publishing held back, then the open
alarms are adopted (:class:`~monitor.cluster._alarms.AlarmPublisher`) and publishing goes live.

A server dying takes the partition's consumer with it (one replica, on one server), and a stream re-electing
its leader fails publishes for seconds: on any error the consumer is made again from the frame after the
last one analysed, alarm transitions not yet published are kept and published first, and the checkpoint
advances only past frames whose transitions are all published.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
import zmq
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from engine import BeatClassifier
from monitor.alarms import AlarmEvent
from monitor.app import Monitor, MonitorConfig, Source
from monitor.cluster._alarms import AlarmCollector, AlarmPublisher
from monitor.cluster._layout import FRAMES_STREAM, decode_envelope, partition_subject
from monitor.errors import FrameError

__all__ = ["Checkpoint", "PartitionRunner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """The last frame (stream sequence, its store time as epoch seconds) whose alarms are published."""

    seq: int = 0
    time: float = 0.0


class PartitionRunner:
    """Analyses one partition while this worker owns it (``step`` until ``close``)."""

    def __init__(
        self,
        partition: int,
        js: JetStreamContext,
        open_kv: KeyValue,
        worker: str,
        resume: Checkpoint,
        *,
        config: MonitorConfig,
        classifier: BeatClassifier | None,
        context: zmq.Context[zmq.Socket[bytes]],
        window_s: float,
        save: Callable[[Checkpoint], Awaitable[None]],
        fetch_batch: int = 500,
    ) -> None:
        self.partition = partition
        self.js = js
        self.resume = resume
        self.checkpoint = resume
        self.window_s = window_s
        self.save = save
        self.fetch_batch = fetch_batch
        self.collector = AlarmCollector()
        self.monitor = Monitor(
            Source(endpoint="inproc://unused"), config, classifier=classifier, context=context, lockstep=True
        )
        self.monitor.add_sink(self.collector)
        self.publisher = AlarmPublisher(js, open_kv, partition, worker)
        self.frames = 0
        self.rejected = 0
        self.caught_up_at: float | None = None  # monotonic time the rebuild reached the live end
        self.started_at = time.monotonic()
        self.claimed_wall = time.time()
        self.live_wall: float | None = None  # wall time it caught up (what a failover measurement reads)
        self._sub: nats.js.JetStreamContext.PullSubscription | None = None
        self._orphans_done = False
        self._analysed = 0  # stream sequence of the last frame through the monitor
        self._pending: list[AlarmEvent] = []  # transitions not yet published, in order
        self._next: Checkpoint | None = None  # the checkpoint once the pending transitions are published

    async def open(self) -> None:
        if self._analysed:  # made again (its server died, or an error): from the next frame
            config = ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self._analysed + 1,
            )
        elif self.resume.seq == 0:  # a partition nobody owned before: everything kept
            config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
        else:
            start = datetime.datetime.fromtimestamp(self.resume.time - self.window_s, tz=datetime.UTC)
            config = ConsumerConfig(
                ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start
            )
        config.inactive_threshold = 30.0
        config.mem_storage = True
        config.num_replicas = 1
        self._sub = await self.js.pull_subscribe(partition_subject(self.partition), stream=FRAMES_STREAM, config=config)

    async def step(self, timeout: float = 0.2) -> int:
        """Fetch and analyse the next frames; return how many."""
        if self._sub is None:
            await self.open()
        assert self._sub is not None
        try:
            msgs = await self._sub.fetch(self.fetch_batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):  # fetch raises either when nothing came
            msgs = []
        except Exception:  # its server gone (no responders, 503) or deleted (404): made again next step
            await self.close()
            raise
        try:
            return await self._analyse(msgs)
        except Exception:  # a fetched frame not analysed, or transitions not published: from the next frame
            await self.close()
            raise

    async def _analyse(self, msgs: list[Msg]) -> int:
        if not msgs:
            if not self.publisher.live:  # nothing to replay
                await self._go_live()
            self.monitor.process()
            await self._publish()
            await self._caught_up()
            return 0
        warm: list[list[bytes]] = []
        live: list[list[bytes]] = []
        for msg in msgs:
            try:
                parts = decode_envelope(msg.data)
            except FrameError as exc:
                self.rejected += 1
                log.warning("partition %d: frame %d rejected: %s", self.partition, msg.metadata.sequence.stream, exc)
                continue
            (warm if msg.metadata.sequence.stream <= self.resume.seq else live).append(parts)
        last = msgs[-1].metadata
        if warm:
            self.monitor.process(warm)
            self.collector.take()  # published by the previous owner
        if not live:
            self._analysed = last.sequence.stream
        elif not self.publisher.live:
            self._analysed = max(self._analysed, min(self.resume.seq, last.sequence.stream))
            await self._go_live()
        self.frames += len(msgs)
        if live:
            self.monitor.process(live)
            self._analysed = last.sequence.stream
            self._next = Checkpoint(last.sequence.stream, last.timestamp.timestamp())
            await self._publish()
        if last.num_pending == 0:
            await self._caught_up()
        return len(msgs)

    async def _go_live(self) -> None:
        def active(stream: str, kind: str) -> str | None:
            state = self.monitor.streams.get(stream)
            event = state.alarms.active.get(kind) if state is not None else None
            return event.alarm_id if event is not None else None

        adopted = await self.publisher.adopt(active)
        if adopted:
            log.info("partition %d: adopted %d open alarm(s)", self.partition, adopted)

    async def _publish(self) -> None:
        self._pending += self.collector.take()
        published = bool(self._pending)
        while self._pending:  # one by one: a failure keeps the rest, and the failed one, for the next step
            await self.publisher.publish(self._pending[:1])
            del self._pending[0]
        if self._next is not None:
            self.checkpoint, self._next = self._next, None
        if published:
            await self.save(self.checkpoint)

    async def _caught_up(self) -> None:
        if not self.publisher.live:
            return
        if self.caught_up_at is None:
            self.caught_up_at = time.monotonic()
            self.live_wall = time.time()
        if not self._orphans_done:

            def sample_of(stream: str) -> int | None:
                proc = self.monitor.ingest.streams.get(stream)
                return None if proc is None else int(proc.samples_end)

            ended = await self.publisher.end_orphans(sample_of)
            self._orphans_done = True
            if ended:
                log.info("partition %d: ended %d alarm(s) gone during the takeover", self.partition, ended)

    @property
    def streams(self) -> list[str]:
        return sorted(self.monitor.ingest.streams)

    async def close(self) -> None:
        """Stop analysing (the partition goes to another owner: its alarms stay open for it)."""
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                log.debug("partition %d: unsubscribe: %s", self.partition, exc)
            self._sub = None
