"""Prometheus metrics of a running monitor, read from its latest :class:`StatusSnapshot`.

The collector (:class:`MonitorCollector`) runs in the HTTP server's thread at
scrape time and reads one thing: ``source.snapshot()``, the immutable picture
the monitor's loop thread last published. Every family of one scrape comes
from that one snapshot, so the figures agree with each other (and with the
status topic). A scrape never raises: when the source cannot give a snapshot,
only ``ecg_monitor_scrape_errors_total`` is served, one higher.

The collector is registered in a registry of its own (:func:`attach`), never
in prometheus_client's global one, so several monitors (and tests) in one
process do not clash. :class:`MetricsServer` serves that registry over HTTP.

Every ``*_total`` is a counter: it never decreases while the monitor runs, the
figures of ended and forgotten streams included; gauges (``streams``,
``alarms_active``, ``health``) show what is current.

Metrics (all monitor-wide; ``per_stream=True`` adds the ``ecg_monitor_stream_*``
families labelled by stream, ``ecg_monitor_stream_frames_rejected_total`` also
by reason, which a deployment with thousands of streams should leave off):

=============================================  =====================================================
``ecg_monitor_streams{state}``                 streams known, by ``active`` / ``ended`` / ``failed``
``ecg_monitor_streams_forgotten_total``        ended streams forgotten (their figures stay in the totals)
``ecg_monitor_messages_total``                 messages received on the ingest socket
``ecg_monitor_frames_total``                   data frames accepted
``ecg_monitor_frames_rejected_total{reason}``  messages rejected, by reason (``duplicate``, ...)
``ecg_monitor_frames_missing_total``           frames never received (sequence gaps)
``ecg_monitor_samples_total``                  samples received in accepted frames
``ecg_monitor_samples_missing_total``          samples lost in gaps (filled as missing)
``ecg_monitor_samples_nan_total``              samples treated as missing (NaN, invalid, out of range, gaps)
``ecg_monitor_device_restarts_total``          device restarts (new segments)
``ecg_monitor_device_reboots_total``           of which: the device sent a new boot id
``ecg_monitor_conflicts_total``                episodes of two devices on one stream id
``ecg_monitor_beats_total``                    beats sent for classification
``ecg_monitor_beats_suppressed_total{why}``    detections not sent: ``unusable`` signal, ``low_amplitude``
``ecg_monitor_beats_labelled_total``           beats labelled (shed beats included, as ``Q``)
``ecg_monitor_beats_late_total``               beats labelled after their latency budget
``ecg_monitor_beats_shed_total``               beats shed under overload (labelled ``Q`` unclassified)
``ecg_monitor_batches_total``                  batches classified
``ecg_monitor_batch_size``                     histogram of batch sizes (beats)
``ecg_monitor_beat_latency_seconds``           histogram: beat ready -> label delivered
``ecg_monitor_alarms_total{kind}``             alarm onsets, by kind (clinical and technical)
``ecg_monitor_alarms_active{priority}``        alarms active now, by ``high`` / ``medium`` / ``low``
``ecg_monitor_alert_messages_sent_total``      alert bus messages published
``ecg_monitor_alert_messages_dropped_total``   alert bus messages dropped (slow subscriber)
``ecg_monitor_alert_subscriptions_total``      alert bus subscriptions received
``ecg_monitor_health``                         1 ok, 0 degraded (as the status topic's ``health``)
``ecg_monitor_info{engine,monitor}``           constant 1, labelled with the engine and monitor id
``ecg_monitor_start_time_seconds``             Unix time the monitor started
``ecg_monitor_scrape_errors_total``            scrapes that got no snapshot (should stay 0)
``process_*``                                  the standard process metrics (Linux)
=============================================  =====================================================
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from monitor.errors import ConfigError
from monitor.observe._status import OK, SnapshotSource, StatusSnapshot

__all__ = ["BATCH_SIZE_BUCKETS", "MetricsServer", "MonitorCollector", "attach", "parse_address"]

log = logging.getLogger(__name__)

#: upper bounds (beats) of the batch size histogram; +Inf is implied
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 4, 16, 64, 256, 1024)
_PREFIX = "ecg_monitor_"


def _bucketize(items: Iterable[tuple[float, float]], bounds: Sequence[float]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets and the sum from ``(value, how many times)`` pairs."""
    per: list[float] = [0] * (len(bounds) + 1)
    total = 0.0
    for value, n in items:
        per[bisect_left(bounds, value)] += n
        total += value * n
    out: list[tuple[str, float]] = []
    running: float = 0
    for bound, n in zip((*bounds, math.inf), per, strict=True):
        running += n
        out.append((floatToGoString(bound), running))
    return out, total


# --------------------------------------------------------------------------- families of one snapshot
def _ingest(s: StatusSnapshot) -> list[Metric]:
    streams = GaugeMetricFamily(_PREFIX + "streams", "Streams known to the monitor, by state", labels=["state"])
    for state, n in s.streams_by_state().items():
        streams.add_metric([state], n)
    rejected = CounterMetricFamily(_PREFIX + "frames_rejected", "Messages rejected, by reason", labels=["reason"])
    reasons = s.rejected_by_reason()
    for reason in sorted(reasons, key=str):
        rejected.add_metric([str(reason)], reasons[reason])
    c = CounterMetricFamily
    return [
        streams,
        c(_PREFIX + "streams_forgotten", "Ended streams forgotten by the monitor", value=s.streams_forgotten),
        c(_PREFIX + "messages", "Messages received on the ingest socket", value=s.messages),
        c(_PREFIX + "frames", "Data frames accepted", value=s.frames),
        c(_PREFIX + "frames_missing", "Frames never received (sequence gaps)", value=s.frames_missing),
        c(_PREFIX + "samples", "Samples received in accepted frames", value=s.samples),
        c(_PREFIX + "samples_missing", "Samples lost in gaps, filled as missing", value=s.samples_missing),
        c(
            _PREFIX + "samples_nan",
            "Samples treated as missing (NaN, invalid, out of range, gaps)",
            value=s.samples_nan,
        ),
        c(_PREFIX + "device_restarts", "Device restarts (new segments of a stream)", value=s.device_restarts),
        c(_PREFIX + "device_reboots", "Device restarts with a new boot id", value=s.device_reboots),
        c(_PREFIX + "conflicts", "Episodes of two devices sending under one stream id", value=s.stream_conflicts),
        rejected,
    ]


def _beats(s: StatusSnapshot) -> list[Metric]:
    suppressed = CounterMetricFamily(
        _PREFIX + "beats_suppressed", "Detections not sent as beats, by why", labels=["why"]
    )
    suppressed.add_metric(["unusable"], s.suppressed)
    suppressed.add_metric(["low_amplitude"], s.low_amplitude)
    buckets, total = _bucketize(((float(k), n) for k, n in s.batch_sizes.items()), BATCH_SIZE_BUCKETS)
    batch_size = HistogramMetricFamily(
        _PREFIX + "batch_size", "Beats per classified batch", buckets=buckets, sum_value=total
    )
    latency = HistogramMetricFamily(
        _PREFIX + "beat_latency_seconds",
        "From a beat being ready (its window and next R peak arrived) to its label being delivered",
        buckets=[(floatToGoString(b), n) for b, n in s.latency.cumulative()],
        sum_value=s.latency.sum,
    )
    c = CounterMetricFamily
    return [
        c(_PREFIX + "beats", "Beats sent for classification", value=s.beats),
        suppressed,
        c(_PREFIX + "beats_labelled", "Beats labelled (shed beats included)", value=s.labelled),
        c(_PREFIX + "beats_late", "Beats labelled after their latency budget", value=s.late),
        c(_PREFIX + "beats_shed", "Beats shed under overload (labelled Q, unclassified)", value=s.shed_total),
        c(_PREFIX + "batches", "Batches classified", value=s.batches),
        batch_size,
        latency,
    ]


def _alarms(s: StatusSnapshot) -> list[Metric]:
    total = CounterMetricFamily(_PREFIX + "alarms", "Alarm onsets, by kind", labels=["kind"])
    for kind in sorted(s.alarm_onsets, key=str):
        total.add_metric([str(kind)], s.alarm_onsets[kind])
    gauge = GaugeMetricFamily(_PREFIX + "alarms_active", "Alarms active now, by priority", labels=["priority"])
    for priority, n in s.alarms_active_by_priority().items():
        gauge.add_metric([priority], n)
    c = CounterMetricFamily
    return [
        total,
        gauge,
        c(_PREFIX + "alert_messages_sent", "Alert bus messages published", value=s.bus_sent),
        c(
            _PREFIX + "alert_messages_dropped",
            "Alert bus messages dropped (a subscriber's queue was full)",
            value=s.bus_dropped,
        ),
        c(_PREFIX + "alert_subscriptions", "Alert bus subscriptions received", value=s.bus_subscriptions),
    ]


def _health(s: StatusSnapshot, start_time: float) -> list[Metric]:
    info = InfoMetricFamily(
        _PREFIX.rstrip("_"),
        "The monitor instance and its classification engine",
        value={"engine": s.engine or "unknown", "monitor": s.monitor or "unknown"},
    )
    return [
        GaugeMetricFamily(
            _PREFIX + "health",
            "1 ok, 0 degraded (a stream failed, the engine is down, or beats were shed)",
            value=1 if s.health == OK else 0,
        ),
        info,
        GaugeMetricFamily(_PREFIX + "start_time_seconds", "Unix time the monitor started", value=start_time),
    ]


def _streams(s: StatusSnapshot, now: float) -> list[Metric]:
    """Per-stream families (``per_stream=True``): one series per stream and family."""
    up = GaugeMetricFamily(_PREFIX + "stream_up", "1 while the stream is active, 0 ended or failed", labels=["stream"])
    beats = CounterMetricFamily(_PREFIX + "stream_beats", "Beats sent for classification", labels=["stream"])
    missing = CounterMetricFamily(_PREFIX + "stream_samples_missing", "Samples lost in gaps", labels=["stream"])
    rejected = CounterMetricFamily(
        _PREFIX + "stream_frames_rejected", "Messages rejected, by reason", labels=["stream", "reason"]
    )
    shed = CounterMetricFamily(_PREFIX + "stream_beats_shed", "Beats shed under overload", labels=["stream"])
    alarms = GaugeMetricFamily(_PREFIX + "stream_alarms_active", "Alarms active now", labels=["stream"])
    age = GaugeMetricFamily(
        _PREFIX + "stream_last_frame_age_seconds", "Time since the stream's last accepted frame", labels=["stream"]
    )
    since_snapshot = max(0.0, now - s.wall_time)  # a snapshot that stops coming makes every stream look older
    for st in s.streams:
        sid = [st.stream]
        up.add_metric(sid, 1 if st.state == "active" else 0)
        beats.add_metric(sid, st.beats)
        missing.add_metric(sid, st.samples_missing)
        for reason in sorted(st.rejected, key=str):
            rejected.add_metric([st.stream, str(reason)], st.rejected[reason])
        shed.add_metric(sid, st.shed)
        alarms.add_metric(sid, st.alarms_active)
        if st.since_data_s is not None and math.isfinite(st.since_data_s):
            age.add_metric(sid, max(0.0, st.since_data_s) + since_snapshot)
    return [up, beats, missing, rejected, shed, alarms, age]


# --------------------------------------------------------------------------- the collector
class MonitorCollector(Collector):
    """Serves the families of ``source.snapshot()`` at scrape time; see the module docstring.

    ``start_time`` (Unix time) overrides the start time the first snapshot
    gives (its wall time less the uptime).
    """

    def __init__(self, source: SnapshotSource, *, per_stream: bool = False, start_time: float | None = None) -> None:
        self.source = source
        self.per_stream = per_stream
        self.start_time = start_time
        self.scrape_errors = 0
        self._lock = threading.Lock()  # scrapes may run in parallel (one thread per request)

    def read(self) -> StatusSnapshot | None:
        """The source's snapshot, or None (counted as a scrape error) when it cannot give one."""
        try:
            snap = self.source.snapshot()
        except Exception as exc:
            log.debug("metrics: no snapshot: %s: %s", type(exc).__name__, exc)
            snap = None
        if not isinstance(snap, StatusSnapshot):
            with self._lock:
                self.scrape_errors += 1
            return None
        return snap

    def collect(self) -> Iterator[Metric]:
        snap = self.read()
        if snap is not None:
            with self._lock:
                if self.start_time is None:
                    self.start_time = snap.start_time
                start_time = self.start_time
            yield from _ingest(snap)
            yield from _beats(snap)
            yield from _alarms(snap)
            yield from _health(snap, start_time)
            if self.per_stream:
                yield from _streams(snap, time.time())
        yield CounterMetricFamily(
            _PREFIX + "scrape_errors",
            "Metric groups a scrape skipped (the monitor's state could not be read)",
            value=self.scrape_errors,
        )


def attach(source: SnapshotSource, *, per_stream: bool = False, process: bool = True) -> CollectorRegistry:
    """A new registry holding a :class:`MonitorCollector` of ``source`` (and the process metrics).

    ``source`` is a running Monitor (anything with ``snapshot()``);
    ``per_stream`` adds per-stream series (leave it off with many streams);
    ``process=False`` leaves out the ``process_*`` metrics.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(source, per_stream=per_stream))
    if process:
        ProcessCollector(registry=registry)
    return registry


# --------------------------------------------------------------------------- HTTP
def parse_address(spec: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``PORT`` or ``:PORT`` (on ``default_host``) -> ``(host, port)``.

    Port 0 picks a free port. Listening on every interface takes an explicit
    ``0.0.0.0:PORT`` (or ``[::]:PORT``).
    """
    text = (spec or "").strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"address {spec!r}: write an IPv6 host in brackets, e.g. [::1]:9108")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"address {spec!r}: expected HOST:PORT or PORT, e.g. 127.0.0.1:9108") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"address {spec!r}: port must be within 0..65535")
    return host or default_host, port


class MetricsServer:
    """Serves ``registry`` on ``http://addr:port/metrics`` from a daemon thread until :meth:`close`.

    ``port=0`` picks a free port; :attr:`port` says which. Binding failures
    raise :class:`OSError`. Usable as a context manager.
    """

    def __init__(self, registry: CollectorRegistry, port: int = 0, addr: str = "127.0.0.1") -> None:
        server, thread = start_http_server(port, addr, registry=registry)
        thread.name = "ecg-monitor-metrics"
        self._server = server
        self.thread = thread
        self.addr = addr
        self.port = int(server.server_port)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and wait for the server thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self.thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
