"""Prometheus metrics of a running monitor, read from its state at scrape time.

Nothing here is on the hot path but :meth:`LatencyHistogram.observe` (a bisect
and two integer/float additions per beat). Everything else is a custom
collector (:class:`MonitorCollector`) that reads the monitor's own counters
when Prometheus scrapes, in the HTTP server's thread, while the monitor thread
keeps mutating them: it copies every dict before iterating it, retries a group
of metrics once when a dict changed size while it was being copied, and skips
the group (counted in ``ecg_monitor_scrape_errors_total``) when it fails again
or the monitor lacks an attribute in an unexpected way. A scrape never raises.

The collector is registered in a registry of its own (:func:`attach`), never
in prometheus_client's global one, so several monitors (and tests) in one
process do not clash. :class:`MetricsServer` serves that registry over HTTP.

Metrics (all monitor-wide; ``per_stream=True`` adds the ``ecg_monitor_stream_*``
families labelled by stream, which a deployment with thousands of streams
should leave off):

=============================================  =====================================================
``ecg_monitor_streams{state}``                 streams known, by ``active`` / ``ended`` / ``failed``
``ecg_monitor_messages_total``                 messages received on the ingest socket
``ecg_monitor_frames_total``                   data frames accepted
``ecg_monitor_frames_rejected_total{reason}``  messages rejected, by reason (``duplicate``, ...)
``ecg_monitor_frames_missing_total``           frames never received (sequence gaps)
``ecg_monitor_samples_total``                  samples received in accepted frames
``ecg_monitor_samples_missing_total``          samples lost in gaps (filled as missing)
``ecg_monitor_samples_nan_total``              samples treated as missing (NaN, invalid, out of range, gaps)
``ecg_monitor_device_restarts_total``          device restarts (new segments)
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
``ecg_monitor_health``                         1 ok, 0 degraded (a stream failed, or beats were shed)
``ecg_monitor_info{engine,monitor}``           constant 1, labelled with the engine and monitor id
``ecg_monitor_start_time_seconds``             Unix time the monitor started
``ecg_monitor_scrape_errors_total``            metric groups skipped by a scrape (should stay 0)
``process_*``                                  the standard process metrics (Linux)
=============================================  =====================================================
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

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
from monitor.vocabulary import ALARM_KINDS, MEDIUM, PRIORITIES

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "LatencyHistogram",
    "MetricsServer",
    "MonitorCollector",
    "attach",
    "parse_address",
]

log = logging.getLogger(__name__)

#: upper bounds (seconds) of the beat latency histogram; +Inf is implied
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
#: upper bounds (beats) of the batch size histogram; +Inf is implied
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 4, 16, 64, 256, 1024)
_PREFIX = "ecg_monitor_"


class LatencyHistogram:
    """Per-beat latency counts in fixed buckets: cheap enough to call for every beat.

    ``observe`` is called by one thread (the monitor's); readers in other
    threads (the metrics collector) take copies without a lock. Bucket counts
    are plain ints and the sum a float, each updated atomically under the GIL,
    so a reader sees consistent buckets but the sum may be one observation
    behind or ahead of them. The count is derived from the buckets, so it
    always equals the ``+Inf`` bucket.
    """

    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        bounds = tuple(sorted(float(b) for b in buckets))
        if not bounds or any(not math.isfinite(b) or b <= 0 for b in bounds) or len(set(bounds)) != len(bounds):
            raise ConfigError(f"latency buckets must be distinct positive finite numbers, got {list(buckets)!r}")
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); the last one is +Inf
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one latency (seconds). NaN is ignored; a negative value (a clock step) counts as 0."""
        if not seconds >= 0.0:
            if seconds != seconds:
                return
            seconds = 0.0
        self._counts[bisect_left(self._bounds, seconds)] += 1  # bucket i holds bounds[i-1] < x <= bounds[i]
        self._sum += seconds

    @property
    def bounds(self) -> tuple[float, ...]:
        """Finite upper bounds of the buckets (``+Inf`` follows them)."""
        return self._bounds

    @property
    def count(self) -> int:
        return sum(self._counts)

    @property
    def sum(self) -> float:
        return self._sum

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        """``([(upper bound, cumulative count), ..., (inf, count)], sum, count)`` as of now."""
        counts = list(self._counts)  # one copy: the buckets agree with each other
        total = self._sum
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self._bounds, math.inf), counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return cumulative, total, running

    def quantile(self, q: float) -> float | None:
        """Estimate of the ``q`` quantile (0..1) in seconds; None before the first observation.

        Linear within the bucket that holds the rank (the lowest bucket starts
        at 0), like Prometheus' ``histogram_quantile``; a rank in the ``+Inf``
        bucket gives the highest finite bound.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within 0..1, got {q!r}")
        counts = list(self._counts)
        total = sum(counts)
        if total == 0:
            return None
        rank = q * total
        below = 0
        lower = 0.0
        for i, n in enumerate(counts):
            if i == len(self._bounds):
                return self._bounds[-1]
            upper = self._bounds[i]
            if n and below + n >= rank:
                return lower + (upper - lower) * max(0.0, rank - below) / n
            below += n
            lower = upper
        return self._bounds[-1]  # not reached: the +Inf bucket returns above

    def percentiles_ms(self, qs: Iterable[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
        """``{"p50": ms, "p95": ms, "p99": ms}`` (None before the first observation), for status messages."""
        out: dict[str, float | None] = {}
        for q in qs:
            v = self.quantile(q)
            out[f"p{100 * q:g}"] = None if v is None else round(1000.0 * v, 3)
        return out


# --------------------------------------------------------------------------- reading the monitor
def _num(obj: object, name: str) -> float:
    """A numeric attribute, or 0 when it is missing or not a finite number."""
    value = getattr(obj, name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0
    return value


def _counts(mapping: object) -> dict[Any, float]:
    """A copy of a Counter-like mapping, numeric values only."""
    if not isinstance(mapping, Mapping):
        return {}
    return {k: v for k, v in dict(mapping).items() if _is_size(v)}


def _values(mapping: object) -> list[Any]:
    return list(mapping.values()) if isinstance(mapping, Mapping) else []


def _items(mapping: object) -> list[tuple[Any, Any]]:
    return list(mapping.items()) if isinstance(mapping, Mapping) else []


def _state(proc: object) -> str:
    stats = getattr(proc, "stats", None)
    if getattr(stats, "error", None) is not None:
        return "failed"
    return "ended" if getattr(stats, "ended", False) else "active"


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


def _wall_start(monitor: object) -> float:
    """Unix time the monitor started (from its own clock's uptime), else now."""
    now = time.time()
    try:
        uptime = float(monitor.clock()) - float(monitor._started)  # type: ignore[attr-defined]
    except Exception:
        return now
    return now - uptime if math.isfinite(uptime) and uptime >= 0 else now


class MonitorCollector(Collector):
    """Reads a monitor's counters at scrape time; see the module docstring.

    ``monitor`` is a :class:`monitor.app._monitor.Monitor` or any object with some of
    its attributes (``ingest``, ``batcher``, ``alarm_counts``, ...): what is
    missing reads as 0. ``latency`` defaults to ``monitor.latency`` if it has one.
    """

    def __init__(
        self,
        monitor: object,
        latency: LatencyHistogram | None = None,
        *,
        per_stream: bool = False,
        start_time: float | None = None,
    ) -> None:
        self.monitor = monitor
        self.latency = latency
        self.per_stream = per_stream
        self.start_time = _wall_start(monitor) if start_time is None else start_time
        self.scrape_errors = 0
        self._groups: tuple[Callable[[list[Any]], list[Metric]], ...] = (
            self._ingest,
            self._rejections,
            self._beats,
            self._latency,
            self._alarms,
            self._bus,
            self._health,
        )
        self._by_stream = (self._ingest, self._rejections, self._beats, self._health, self._streams)
        self._lock = threading.Lock()  # scrapes may run in parallel (one thread per request)

    def collect(self) -> Iterator[Metric]:
        procs = self._guarded(self._procs, self.monitor)
        groups = list(self._groups)
        if self.per_stream:
            groups.append(self._streams)
        if procs is None:  # without the streams, their sums would drop (a counter reset to Prometheus): skip them
            groups = [g for g in groups if g not in self._by_stream]
        for group in groups:
            yield from self._guarded(group, procs or []) or []
        yield CounterMetricFamily(
            _PREFIX + "scrape_errors",
            "Metric groups a scrape skipped (the monitor's state could not be read)",
            value=self.scrape_errors,
        )

    @staticmethod
    def _procs(monitor: object) -> list[Any]:
        return _values(getattr(getattr(monitor, "ingest", None), "streams", None))

    def _guarded(self, read: Callable[[Any], list[Any]], arg: object) -> list[Any] | None:
        """``read(arg)``; once more if a dict changed size meanwhile; None (and counted) if it fails."""
        what = getattr(read, "__name__", "?")
        for attempt in range(2):
            try:
                return read(arg)
            except RuntimeError as exc:  # 'dictionary changed size during iteration': the monitor thread was busy
                if attempt:
                    log.debug("metrics: %s skipped: %s", what, exc)
            except Exception as exc:
                log.debug("metrics: %s skipped: %s: %s", what, type(exc).__name__, exc)
                break
        with self._lock:
            self.scrape_errors += 1
        return None

    # ----------------------------------------------------------------- groups
    def _ingest(self, procs: list[Any]) -> list[Metric]:
        m = self.monitor
        ingest = getattr(m, "ingest", None)
        states = dict.fromkeys(("active", "ended", "failed"), 0)
        frames = samples = nan = restarts = conflicts = missing = frames_missing = 0.0
        for p in procs:
            states[_state(p)] += 1
            st = getattr(p, "stats", None)
            frames += _num(st, "frames")
            samples += _num(st, "samples")
            nan += _num(st, "nan_samples")
            restarts += _num(st, "restarts")
            conflicts += _num(st, "conflicts")
            tracker = getattr(p, "tracker", None)
            missing += _num(tracker, "samples_missing")
            frames_missing += _num(tracker, "frames_missing")
        streams = GaugeMetricFamily(_PREFIX + "streams", "Streams known to the monitor, by state", labels=["state"])
        for state, n in states.items():
            streams.add_metric([state], n)
        c = CounterMetricFamily
        return [
            streams,
            c(_PREFIX + "messages", "Messages received on the ingest socket", value=_num(ingest, "messages")),
            c(_PREFIX + "frames", "Data frames accepted", value=frames),
            c(_PREFIX + "frames_missing", "Frames never received (sequence gaps)", value=frames_missing),
            c(_PREFIX + "samples", "Samples received in accepted frames", value=samples),
            c(_PREFIX + "samples_missing", "Samples lost in gaps, filled as missing", value=missing),
            c(_PREFIX + "samples_nan", "Samples treated as missing (NaN, invalid, out of range, gaps)", value=nan),
            c(_PREFIX + "device_restarts", "Device restarts (new segments of a stream)", value=restarts),
            c(_PREFIX + "conflicts", "Episodes of two devices sending under one stream id", value=conflicts),
        ]

    def _rejections(self, procs: list[Any]) -> list[Metric]:
        reasons = _counts(getattr(getattr(self.monitor, "ingest", None), "rejected", None))
        for p in procs:
            for reason, n in _counts(getattr(getattr(p, "stats", None), "rejected", None)).items():
                reasons[reason] = reasons.get(reason, 0) + n
        fam = CounterMetricFamily(_PREFIX + "frames_rejected", "Messages rejected, by reason", labels=["reason"])
        for reason in sorted(reasons, key=str):
            fam.add_metric([str(reason)], reasons[reason])
        return [fam]

    def _beats(self, procs: list[Any]) -> list[Metric]:
        m = self.monitor
        beats = unusable = low = 0.0
        for p in procs:
            st = getattr(p, "stats", None)
            beats += _num(st, "beats")
            unusable += _num(st, "suppressed")
            low += _num(st, "low_amplitude")
        bst = getattr(getattr(m, "batcher", None), "stats", None)
        suppressed = CounterMetricFamily(
            _PREFIX + "beats_suppressed", "Detections not sent as beats, by why", labels=["why"]
        )
        suppressed.add_metric(["unusable"], unusable)
        suppressed.add_metric(["low_amplitude"], low)
        sizes = [(float(k), n) for k, n in _counts(getattr(bst, "batch_sizes", None)).items() if _is_size(k)]
        buckets, total = _bucketize(sizes, BATCH_SIZE_BUCKETS)
        batch_size = HistogramMetricFamily(
            _PREFIX + "batch_size", "Beats per classified batch", buckets=buckets, sum_value=total
        )
        c = CounterMetricFamily
        return [
            c(_PREFIX + "beats", "Beats sent for classification", value=beats),
            suppressed,
            c(_PREFIX + "beats_labelled", "Beats labelled (shed beats included)", value=_num(m, "labeled")),
            c(_PREFIX + "beats_late", "Beats labelled after their latency budget", value=_num(bst, "late")),
            c(
                _PREFIX + "beats_shed",
                "Beats shed under overload (labelled Q, unclassified)",
                value=sum(_counts(getattr(bst, "shed", None)).values()),
            ),
            c(_PREFIX + "batches", "Batches classified", value=_num(bst, "batches")),
            batch_size,
        ]

    def _latency(self, procs: list[Any]) -> list[Metric]:
        latency = self.latency if self.latency is not None else getattr(self.monitor, "latency", None)
        if isinstance(latency, LatencyHistogram):
            cumulative, total, _ = latency.snapshot()
        else:
            cumulative, total = [(b, 0) for b in (*LATENCY_BUCKETS, math.inf)], 0.0
        fam = HistogramMetricFamily(
            _PREFIX + "beat_latency_seconds",
            "From a beat being ready (its window and next R peak arrived) to its label being delivered",
            buckets=[(floatToGoString(b), n) for b, n in cumulative],
            sum_value=total,
        )
        return [fam]

    def _alarms(self, procs: list[Any]) -> list[Metric]:
        m = self.monitor
        onsets = _counts(getattr(m, "alarm_counts", None))
        total = CounterMetricFamily(_PREFIX + "alarms", "Alarm onsets, by kind", labels=["kind"])
        for kind in sorted(onsets, key=str):
            total.add_metric([str(kind)], onsets[kind])
        active = dict.fromkeys(PRIORITIES, 0)
        for per_stream in _values(getattr(m, "_alarm_active", None)):
            for event in _values(per_stream):
                ev_kind = getattr(event, "kind", None)
                prio = ALARM_KINDS[ev_kind].priority if ev_kind in ALARM_KINDS else MEDIUM
                active[prio] = active.get(prio, 0) + 1
        gauge = GaugeMetricFamily(_PREFIX + "alarms_active", "Alarms active now, by priority", labels=["priority"])
        for prio, n in active.items():
            gauge.add_metric([prio], n)
        return [total, gauge]

    def _bus(self, procs: list[Any]) -> list[Metric]:
        bus = getattr(self.monitor, "bus", None)
        c = CounterMetricFamily
        return [
            c(_PREFIX + "alert_messages_sent", "Alert bus messages published", value=_num(bus, "sent")),
            c(
                _PREFIX + "alert_messages_dropped",
                "Alert bus messages dropped (a subscriber's queue was full)",
                value=_num(bus, "dropped"),
            ),
            c(_PREFIX + "alert_subscriptions", "Alert bus subscriptions received", value=_num(bus, "subscriptions")),
        ]

    def _health(self, procs: list[Any]) -> list[Metric]:
        m = self.monitor
        failed = any(_state(p) == "failed" for p in procs)
        shed = bool(_counts(getattr(getattr(getattr(m, "batcher", None), "stats", None), "shed", None)))
        engine = getattr(getattr(m, "classifier", None), "name", None)
        info = InfoMetricFamily(
            _PREFIX.rstrip("_"),
            "The monitor instance and its classification engine",
            value={"engine": str(engine or "unknown"), "monitor": str(getattr(m, "id", None) or "unknown")},
        )
        return [
            GaugeMetricFamily(
                _PREFIX + "health",
                "1 ok, 0 degraded (a stream failed, or beats were shed)",
                value=0 if failed or shed else 1,
            ),
            info,
            GaugeMetricFamily(_PREFIX + "start_time_seconds", "Unix time the monitor started", value=self.start_time),
        ]

    def _streams(self, procs: list[Any]) -> list[Metric]:
        """Per-stream families (``per_stream=True``): one series per stream and family."""
        m = self.monitor
        up = GaugeMetricFamily(
            _PREFIX + "stream_up", "1 while the stream is active, 0 ended or failed", labels=["stream"]
        )
        beats = CounterMetricFamily(_PREFIX + "stream_beats", "Beats sent for classification", labels=["stream"])
        missing = CounterMetricFamily(_PREFIX + "stream_samples_missing", "Samples lost in gaps", labels=["stream"])
        rejected = CounterMetricFamily(_PREFIX + "stream_frames_rejected", "Messages rejected", labels=["stream"])
        shed_fam = CounterMetricFamily(_PREFIX + "stream_beats_shed", "Beats shed under overload", labels=["stream"])
        alarms = GaugeMetricFamily(_PREFIX + "stream_alarms_active", "Alarms active now", labels=["stream"])
        age = GaugeMetricFamily(
            _PREFIX + "stream_last_frame_age_seconds", "Time since the stream's last accepted frame", labels=["stream"]
        )
        shed = _counts(getattr(getattr(getattr(m, "batcher", None), "stats", None), "shed", None))
        active = {str(k): len(_values(v)) for k, v in _items(getattr(m, "_alarm_active", None))}
        clock = getattr(m, "clock", None)
        now = _now(clock)
        for p in procs:
            sid = str(getattr(p, "stream", "?"))
            st = getattr(p, "stats", None)
            up.add_metric([sid], 1 if _state(p) == "active" else 0)
            beats.add_metric([sid], _num(st, "beats"))
            missing.add_metric([sid], _num(getattr(p, "tracker", None), "samples_missing"))
            rejected.add_metric([sid], sum(_counts(getattr(st, "rejected", None)).values()))
            shed_fam.add_metric([sid], shed.get(getattr(p, "stream", None), 0))
            alarms.add_metric([sid], active.get(sid, 0))
            last = getattr(st, "last_arrival", None)
            if now is not None and isinstance(last, (int, float)) and math.isfinite(last):
                age.add_metric([sid], max(0.0, now - last))
        return [up, beats, missing, rejected, shed_fam, alarms, age]


def _is_size(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _now(clock: object) -> float | None:
    if not callable(clock):
        return None
    try:
        value = float(clock())
    except Exception:
        return None
    return value if math.isfinite(value) else None


def attach(
    monitor: object, latency: LatencyHistogram | None = None, *, per_stream: bool = False, process: bool = True
) -> CollectorRegistry:
    """A new registry holding a :class:`MonitorCollector` of ``monitor`` (and the process metrics).

    ``latency`` is the histogram the monitor feeds per beat (default:
    ``monitor.latency``); ``per_stream`` adds per-stream series (leave it off
    with many streams); ``process=False`` leaves out the ``process_*`` metrics.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor, latency, per_stream=per_stream))
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
        raise ConfigError(f"metrics address {spec!r}: write an IPv6 host in brackets, e.g. [::1]:9108")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"metrics address {spec!r}: expected HOST:PORT or PORT, e.g. 127.0.0.1:9108") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics address {spec!r}: port must be within 0..65535")
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
