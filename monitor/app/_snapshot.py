"""The monitor's status snapshot, built on the loop thread from the stages' own figures."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from monitor.ingest import StreamProcessor
from monitor.observe import StatusSnapshot, StreamStatus

if TYPE_CHECKING:
    from monitor.app._monitor import Monitor

__all__ = ["build_snapshot", "stream_status_of"]


def stream_status_of(proc: StreamProcessor, now: float, *, shed: int = 0, alarms_active: int = 0) -> StreamStatus:
    """One stream's figures as of ``now`` (the monitor's clock); ``shed`` and ``alarms_active`` come
    from the stages after ingest."""
    st = proc.stats
    last = proc.last_peak if proc.last_peak is not None else proc.origin
    return StreamStatus(
        stream=proc.stream,
        fs=proc.fs,
        ended=st.ended,
        error=st.error,
        frames=st.frames,
        frames_missing=proc.tracker.frames_missing,
        samples=st.samples,
        samples_missing=proc.tracker.samples_missing,
        samples_nan=st.nan_samples,
        rejected=st.rejected,
        beats=st.beats,
        suppressed=st.suppressed,
        low_amplitude=st.low_amplitude,
        restarts=st.restarts,
        reboots=st.reboots,
        long_gaps=st.long_gaps,
        conflicts=st.conflicts,
        shed=shed,
        alarms_active=alarms_active,
        since_data_s=None if st.last_arrival is None else now - st.last_arrival,
        duration_s=(proc.samples_end - proc.origin) / proc.fs,
        quality=proc.quality.current,
        quality_alarms=tuple(proc.quality.active_alarms),
        since_beat_s=(proc.samples_end - last) / proc.fs,
        lead=proc.lead_name,
        lead_fallback=bool(st.lead_fallback),
        boot=proc.boot,
        segment=proc.segments.current.label,
    )


def build_snapshot(monitor: Monitor, now: float) -> StatusSnapshot:
    """Every figure that status, metrics and views show, copied at one instant (read-only afterwards)."""
    shed = monitor.batcher.stats.shed
    states = monitor.streams.states
    streams = []
    for p in monitor.ingest.streams.values():
        state = states.get(p.stream)
        alarms_active = 0 if state is None else len(state.alarms.active)
        streams.append(stream_status_of(p, now, shed=shed.get(p.stream, 0), alarms_active=alarms_active))
    active = Counter(e.priority for s in states.values() for e in s.alarms.active.values())
    bus = monitor.bus
    return StatusSnapshot(
        monitor=monitor.id,
        engine=monitor.engine.name,
        wall_time=time.time(),
        uptime_s=now - monitor.started_at,
        messages=monitor.ingest.messages,
        rejected=monitor.ingest.rejected,
        labelled=monitor.labels.labeled,
        late=monitor.batcher.stats.late,
        batches=monitor.batcher.stats.batches,
        batch_sizes=monitor.batcher.stats.batch_sizes,
        shed=shed,
        alarm_onsets=monitor.alarms.counts,
        alarms_active=active,
        latency=monitor.labels.latency.freeze(),
        bus_sent=0 if bus is None else bus.sent,
        bus_dropped=0 if bus is None else bus.dropped,
        bus_subscriptions=0 if bus is None else bus.subscriptions,
        engine_problem=monitor.engine.problem,
        engine_errors=monitor.engine.errors,
        streams=tuple(streams),
        retired=monitor.streams.retired,
        streams_forgotten=monitor.streams.forgotten,
    )
