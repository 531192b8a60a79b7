"""The label path: detected beats -> batcher -> supervised engine -> labels to rhythm logic and sinks."""

from __future__ import annotations

from collections.abc import Callable

from engine import Batcher, Beat, EngineResult, EngineSupervisor, LabeledBeat
from monitor.alarms import AlarmManager
from monitor.app._streams import StreamTable
from monitor.observe import LatencyHistogram
from monitor.outputs import Sink

__all__ = ["LabelFlow"]


class LabelFlow:
    """Queues beats, hands due batches to the engine and delivers what comes back.

    While the engine fails (or backs off before a retry) beats are delivered as
    ``Q``: rate, asystole and VF alarms go on, since they need no labels; the
    affected streams carry an ``engine_failed`` technical alarm until a batch
    succeeds again. Shed beats (overload) are delivered as ``Q`` at once.
    """

    def __init__(
        self,
        batcher: Batcher[Beat],
        engine: EngineSupervisor,
        streams: StreamTable,
        alarms: AlarmManager,
        sinks: Sink,
        clock: Callable[[], float],
    ) -> None:
        self.batcher = batcher
        self.engine = engine
        self.streams = streams
        self.alarms = alarms
        self.sinks = sinks
        self.clock = clock
        self.latency = LatencyHistogram()  # beat ready -> label delivered
        self.labeled = 0

    @property
    def idle(self) -> bool:
        """No beat queued and no batch in flight."""
        return not len(self.batcher) and not self.engine.busy

    def queue(self, beat: Beat) -> None:
        state = self.streams.get(beat.stream)
        if state is not None:
            state.inflight.append(beat.sample)
        shed = self.batcher.on_beat(beat)
        if shed is not None:  # overload: the beat still counts, unclassified
            self._deliver([shed], ["Q"])
            shed_state = self.streams.get(shed.stream)
            if shed_state is not None:
                self.alarms.on_shed(shed_state.alarms, shed.sample, self.clock())

    def run_due(self) -> None:
        """Hand every batch the batcher says is due now to the engine (one at a time on its thread)."""
        self.collect()
        while self.engine.ready() and (batch := self.batcher.on_deadline(self.clock())) is not None:
            self._apply(self.engine.submit(batch))

    def flush(self) -> None:
        """Label everything queued now: the batch in flight, then every queued beat (stream ends, shutdown)."""
        self.collect(wait=True)
        for batch in self.batcher.flush(self.clock()):
            self._apply(self.engine.submit(batch))
            self.collect(wait=True)

    def collect(self, wait: bool = False) -> None:
        """Take the engine's finished batches (``wait``: also the one in flight)."""
        self._apply(self.engine.collect(wait=wait))

    def _apply(self, results: list[EngineResult]) -> None:
        for r in results:
            if r.seconds:
                self.batcher.on_done(len(r.beats), r.seconds)
            if r.failure is not None:
                for b in {b.stream: b for b in r.beats}.values():
                    state = self.streams.get(b.stream)
                    if state is not None:
                        self.alarms.engine_failed(state.alarms, b.sample)
            else:  # a success after a failure: end the engine alarms before these labels count
                self._transitions()
            self._deliver(r.beats, r.labels)
        self._transitions()

    def _transitions(self) -> None:
        for change, _problem in self.engine.transitions():
            if change == "up":
                for state in self.streams.states.values():
                    self.alarms.engine_recovered(state.alarms, state.proc.samples_end)

    def _deliver(self, beats: list[Beat], labels: list[str]) -> None:
        if not beats:
            return
        labeled = [LabeledBeat(b, lab) for b, lab in zip(beats, labels, strict=True)]
        self.labeled += len(labeled)
        now = self.clock()
        for lb in labeled:
            b = lb.beat
            self.latency.observe(now - b.ready_at)
            state = self.streams.get(b.stream)
            if state is not None:
                state.label_arrived(b.sample)
                if not state.finished:
                    state.rhythm.on_beat(b.sample, lb.label, b.ready_sample, b.shape)
        self.sinks.on_beats(labeled, now)
