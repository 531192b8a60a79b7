from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import zmq
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.registry import CollectorRegistry

from monitor import encode_data, encode_eos
from monitor.alarms import AlarmEvent
from monitor.app import Monitor, Source
from monitor.errors import ConfigError
from monitor.observe import LatencyHistogram, MetricsServer, MonitorCollector, attach, parse_address
from tests._synth import ecg

KW: dict[str, Any] = dict(channels=["II"], units=["mV"], gain=[1.0], baseline=[0.0])
FS = 250.0


def frames_of(x: np.ndarray, stream: str, chunk: int = 25) -> list[list[bytes]]:
    out = [
        encode_data(stream, k, i, FS, x[i : i + chunk, None].astype("<f4"), **KW)
        for k, i in enumerate(range(0, x.size, chunk))
    ]
    out.append(encode_eos(stream, len(out), x.size))
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode())


def make_monitor(ctx: zmq.Context[zmq.Socket[bytes]]) -> Monitor:
    return Monitor(Source(endpoint="inproc://metrics-test"), context=ctx)


def run_messages(monitor: Monitor, messages: list[list[bytes]]) -> None:
    """What the monitor loop does with received messages, without a socket."""
    for parts in messages:
        monitor.ingest.on_message(parts)
        for beat in monitor.ingest.step():
            monitor._queue(beat)
    for batch in monitor.batcher.flush(monitor.clock()):
        monitor._classify(batch)


# --------------------------------------------------------------------------- LatencyHistogram
def test_latency_histogram_buckets_are_cumulative_and_inclusive() -> None:
    h = LatencyHistogram()
    for v in (0.001, 0.005, 0.0051, 0.2, 3.0, float("nan"), -0.5):
        h.observe(v)
    buckets, total, count = h.snapshot()
    assert count == h.count == 6  # NaN ignored, the negative one counted as 0
    got = dict(buckets)
    assert got[0.005] == 3  # 0.001, 0.005 (upper bounds are inclusive) and the clamped -0.5
    assert got[0.01] == 4
    assert got[0.25] == 5 and got[2.5] == 5
    assert got[float("inf")] == 6
    assert [b for b, _ in buckets] == [*h.bounds, float("inf")]
    assert h.bounds == (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
    assert total == pytest.approx(0.001 + 0.005 + 0.0051 + 0.2 + 3.0)
    assert h.sum == total


def test_latency_quantiles_are_linear_within_a_bucket() -> None:
    h = LatencyHistogram()
    assert h.quantile(0.5) is None
    assert h.percentiles_ms() == {"p50": None, "p95": None, "p99": None}
    for _ in range(50):
        h.observe(0.003)
    for _ in range(50):
        h.observe(0.03)
    assert h.quantile(0.5) == pytest.approx(0.005)
    assert h.quantile(0.25) == pytest.approx(0.0025)  # 0 .. 0.005, halfway
    assert h.quantile(0.75) == pytest.approx(0.0375)  # 0.025 .. 0.05, halfway
    assert h.quantile(1.0) == pytest.approx(0.05)
    assert h.quantile(0.0) == 0.0
    assert h.percentiles_ms((0.5, 0.75)) == {"p50": 5.0, "p75": 37.5}
    h.observe(10.0)
    assert h.quantile(1.0) == 2.5  # in the +Inf bucket: the highest finite bound
    with pytest.raises(ValueError):
        h.quantile(1.5)
    with pytest.raises(ConfigError):
        LatencyHistogram(buckets=(0.1, 0.1))


# --------------------------------------------------------------------------- the collector
def test_a_monitor_with_no_streams_scrapes(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    monitor = make_monitor(ctx)
    reg = attach(monitor, LatencyHistogram())
    text = generate_latest(reg).decode()
    assert 'ecg_monitor_streams{state="active"} 0.0' in text
    assert "# TYPE ecg_monitor_messages_total counter" in text
    assert "# TYPE ecg_monitor_beat_latency_seconds histogram" in text
    assert 'ecg_monitor_beat_latency_seconds_bucket{le="0.005"} 0.0' in text
    assert 'ecg_monitor_batch_size_bucket{le="1024.0"} 0.0' in text
    assert value(reg, "ecg_monitor_health") == 1
    assert value(reg, "ecg_monitor_info", engine="unclassified", monitor=monitor.id) == 1
    assert value(reg, "ecg_monitor_alarms_active", priority="high") == 0
    assert value(reg, "ecg_monitor_alert_messages_sent_total") == 0
    assert value(reg, "ecg_monitor_scrape_errors_total") == 0
    start = value(reg, "ecg_monitor_start_time_seconds")
    assert start is not None and abs(start - time.time()) < 60
    assert "ecg_monitor_stream_" not in text  # no per-stream series unless asked
    assert b"ecg_monitor_" not in generate_latest(REGISTRY)  # the global registry is left alone


def test_ingest_beats_and_batches_are_reported(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    monitor = make_monitor(ctx)
    latency = LatencyHistogram()
    reg = attach(monitor, latency)
    x, _ = ecg([0.8] * 20, FS)
    frames = frames_of(x, "a")
    lost = frames[10]
    messages = [f for k, f in enumerate(frames) if k != 10]
    messages.insert(20, frames[20])  # a duplicate
    messages.insert(5, [b"not json"])  # undecodable
    run_messages(monitor, messages)
    proc = monitor.ingest.streams["a"]
    assert proc.stats.ended and proc.stats.beats > 10

    assert value(reg, "ecg_monitor_streams", state="ended") == 1
    assert value(reg, "ecg_monitor_streams", state="active") == 0
    assert value(reg, "ecg_monitor_messages_total") == len(messages)
    assert value(reg, "ecg_monitor_frames_total") == len(frames) - 2  # less the eos and the lost one
    assert value(reg, "ecg_monitor_samples_total") == x.size - 25
    assert value(reg, "ecg_monitor_samples_missing_total") == 25
    assert value(reg, "ecg_monitor_frames_missing_total") == 1
    assert value(reg, "ecg_monitor_frames_rejected_total", reason="duplicate") == 1
    assert sum(v for k, v in monitor.ingest.rejected.items()) == 1
    reason = next(iter(monitor.ingest.rejected))
    assert value(reg, "ecg_monitor_frames_rejected_total", reason=reason) == 1
    assert lost not in messages
    assert value(reg, "ecg_monitor_beats_total") == proc.stats.beats
    assert value(reg, "ecg_monitor_beats_labelled_total") == monitor.labeled == proc.stats.beats
    assert value(reg, "ecg_monitor_beats_suppressed_total", why="unusable") == proc.stats.suppressed
    assert value(reg, "ecg_monitor_beats_suppressed_total", why="low_amplitude") == proc.stats.low_amplitude
    st = monitor.batcher.stats
    assert value(reg, "ecg_monitor_batches_total") == st.batches > 0
    assert value(reg, "ecg_monitor_batch_size_count") == st.batches
    assert value(reg, "ecg_monitor_batch_size_sum") == st.beats_out == proc.stats.beats
    assert value(reg, "ecg_monitor_beats_shed_total") == 0
    assert value(reg, "ecg_monitor_health") == 1

    for v in (0.004, 0.02, 0.02, 0.3):
        latency.observe(v)
    assert value(reg, "ecg_monitor_beat_latency_seconds_count") == 4
    assert value(reg, "ecg_monitor_beat_latency_seconds_bucket", le="0.005") == 1
    assert value(reg, "ecg_monitor_beat_latency_seconds_bucket", le="0.025") == 3
    assert value(reg, "ecg_monitor_beat_latency_seconds_bucket", le="+Inf") == 4
    assert value(reg, "ecg_monitor_beat_latency_seconds_sum") == pytest.approx(0.344)


def test_batch_size_histogram_buckets() -> None:
    fake = SimpleNamespace(
        batcher=SimpleNamespace(stats=SimpleNamespace(batch_sizes=Counter({1: 3, 5: 2, 256: 1, 3000: 1})))
    )
    reg = attach(fake, process=False)
    assert value(reg, "ecg_monitor_batch_size_bucket", le="1.0") == 3
    assert value(reg, "ecg_monitor_batch_size_bucket", le="4.0") == 3
    assert value(reg, "ecg_monitor_batch_size_bucket", le="16.0") == 5
    assert value(reg, "ecg_monitor_batch_size_bucket", le="256.0") == 6
    assert value(reg, "ecg_monitor_batch_size_bucket", le="1024.0") == 6
    assert value(reg, "ecg_monitor_batch_size_bucket", le="+Inf") == 7
    assert value(reg, "ecg_monitor_batch_size_sum") == 3 + 10 + 256 + 3000


def test_alarms_health_and_per_stream_series(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    monitor = make_monitor(ctx)
    x, _ = ecg([0.8] * 5, FS)
    run_messages(monitor, frames_of(x, "a")[:-1] + frames_of(x, "b")[:-1])  # both still active
    monitor._alarms(
        [
            AlarmEvent("a", "vtach", "onset", 100, 120, FS, "VT"),
            AlarmEvent("a", "stream_conflict", "onset", 100, 120, FS, "Conflict", category="technical"),
            AlarmEvent("b", "vtach", "onset", 100, 120, FS, "VT"),
            AlarmEvent("b", "vtach", "end", 100, 400, FS, "VT"),
            AlarmEvent("b", "noisy_signal", "onset", 10, 20, FS, "Noisy", category="technical"),
        ]
    )
    reg = attach(monitor, LatencyHistogram(), per_stream=True)
    assert value(reg, "ecg_monitor_alarms_total", kind="vtach") == 2
    assert value(reg, "ecg_monitor_alarms_total", kind="noisy_signal") == 1
    assert value(reg, "ecg_monitor_alarms_active", priority="high") == 2  # vtach on a, stream conflict
    assert value(reg, "ecg_monitor_alarms_active", priority="low") == 1
    assert value(reg, "ecg_monitor_alarms_active", priority="medium") == 0
    assert value(reg, "ecg_monitor_streams", state="active") == 2
    assert value(reg, "ecg_monitor_stream_up", stream="a") == 1
    assert value(reg, "ecg_monitor_stream_alarms_active", stream="a") == 2
    assert value(reg, "ecg_monitor_stream_alarms_active", stream="b") == 1
    assert value(reg, "ecg_monitor_stream_beats_total", stream="b") == monitor.ingest.streams["b"].stats.beats
    age = value(reg, "ecg_monitor_stream_last_frame_age_seconds", stream="a")
    assert age is not None and 0 <= age < 60

    monitor.ingest.streams["b"].stats.error = "RuntimeError: boom"
    assert value(reg, "ecg_monitor_streams", state="failed") == 1
    assert value(reg, "ecg_monitor_stream_up", stream="b") == 0
    assert value(reg, "ecg_monitor_health") == 0
    monitor.ingest.streams["b"].stats.error = None
    monitor.batcher.stats.shed["a"] += 3
    assert value(reg, "ecg_monitor_health") == 0
    assert value(reg, "ecg_monitor_beats_shed_total") == 3
    assert value(reg, "ecg_monitor_stream_beats_shed_total", stream="a") == 3


def test_alert_bus_counters() -> None:
    fake = SimpleNamespace(bus=SimpleNamespace(sent=7, dropped=2, subscriptions=1))
    reg = attach(fake, process=False)
    assert value(reg, "ecg_monitor_alert_messages_sent_total") == 7
    assert value(reg, "ecg_monitor_alert_messages_dropped_total") == 2
    assert value(reg, "ecg_monitor_alert_subscriptions_total") == 1


class Racing(dict[str, Any]):
    """A dict whose first ``fail`` reads raise as if another thread had resized it."""

    def __init__(self, items: dict[str, Any], fail: int) -> None:
        super().__init__(items)
        self.fail = fail

    def values(self) -> Any:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("dictionary changed size during iteration")
        return super().values()


def fake_stream(name: str, beats: int) -> SimpleNamespace:
    return SimpleNamespace(stream=name, stats=SimpleNamespace(beats=beats, ended=False, error=None), tracker=None)


def test_a_resized_dict_is_read_again_then_skipped() -> None:
    streams = Racing({"a": fake_stream("a", 4)}, fail=1)
    fake = SimpleNamespace(ingest=SimpleNamespace(streams=streams, messages=9))
    collector = MonitorCollector(fake)
    reg = CollectorRegistry()
    reg.register(collector)
    assert value(reg, "ecg_monitor_beats_total") == 4  # read again after the first failure
    assert value(reg, "ecg_monitor_scrape_errors_total") == 0

    streams.fail = 2
    text = generate_latest(reg).decode()  # never raises
    assert "ecg_monitor_beats_total" not in text  # the stream sums would drop: left out of this scrape
    assert "ecg_monitor_streams{" not in text
    assert "ecg_monitor_beat_latency_seconds_count 0.0" in text  # groups not about streams still there
    assert "ecg_monitor_scrape_errors_total 1.0" in text
    assert value(reg, "ecg_monitor_beats_total") == 4


def test_scrapes_while_another_thread_adds_streams() -> None:
    streams: dict[str, Any] = {}
    rejected: Counter[str] = Counter()
    fake = SimpleNamespace(ingest=SimpleNamespace(streams=streams, rejected=rejected, messages=0))
    reg = attach(fake, per_stream=True, process=False)
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set() and k < 5000:
            streams[f"s{k}"] = fake_stream(f"s{k}", 1)
            rejected[f"r{k % 50}"] += 1
            k += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while thread.is_alive():
            generate_latest(reg)  # never raises, whatever the writer does meanwhile
    finally:
        stop.set()
        thread.join()
    assert value(reg, "ecg_monitor_beats_total") == len(streams)


class Broken:
    """An object whose every attribute read fails."""

    def __getattr__(self, name: str) -> Any:
        raise ValueError(name)


def test_collect_never_raises_on_odd_objects() -> None:
    for thing in (SimpleNamespace(), object(), None, Broken()):
        reg = attach(thing, process=False)
        text = generate_latest(reg).decode()
        assert "ecg_monitor_scrape_errors_total" in text
    reg = attach(SimpleNamespace(), process=False)
    assert value(reg, "ecg_monitor_streams", state="active") == 0
    assert value(reg, "ecg_monitor_scrape_errors_total") == 0
    odd = SimpleNamespace(
        ingest=SimpleNamespace(streams={"a": SimpleNamespace(stats=Broken())}, rejected={"x": "many"}),
        alarm_counts=[1, 2],
        _alarm_active={"a": {"k": object()}},
        labeled=float("nan"),
    )
    reg = attach(odd, process=False)
    assert value(reg, "ecg_monitor_alarms_active", priority="medium") == 1  # an event without a kind
    assert value(reg, "ecg_monitor_alarms_total", kind="vtach") is None
    assert value(reg, "ecg_monitor_frames_rejected_total", reason="x") is None  # not a number: left out
    # the stream's stats cannot be read: the groups summing over streams are skipped, not reported as 0
    assert value(reg, "ecg_monitor_beats_total") is None
    assert value(reg, "ecg_monitor_streams", state="active") is None
    assert value(reg, "ecg_monitor_health") is None
    errors = value(reg, "ecg_monitor_scrape_errors_total")
    assert errors is not None and errors >= 3


def test_two_monitors_in_one_process(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    a, b = make_monitor(ctx), make_monitor(ctx)
    ra, rb = attach(a, LatencyHistogram()), attach(b, LatencyHistogram())
    run_messages(a, [[b"junk"]])
    assert value(ra, "ecg_monitor_messages_total") == 1
    assert value(rb, "ecg_monitor_messages_total") == 0


# --------------------------------------------------------------------------- HTTP
def test_parse_address() -> None:
    assert parse_address("9108") == ("127.0.0.1", 9108)
    assert parse_address(":9108") == ("127.0.0.1", 9108)
    assert parse_address("0.0.0.0:9108") == ("0.0.0.0", 9108)
    assert parse_address("localhost:0") == ("localhost", 0)
    assert parse_address("[::1]:9108") == ("::1", 9108)
    for bad in ("", "host:", "host:http", "::1:9108", "1.2.3.4:70000", "x:-1"):
        with pytest.raises(ConfigError):
            parse_address(bad)


def test_server_serves_metrics_and_closes(ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    before = set(threading.enumerate())
    monitor = make_monitor(ctx)
    run_messages(monitor, [[b"junk"], [b"more junk"]])
    server = MetricsServer(attach(monitor, LatencyHistogram()), port=0)
    try:
        assert server.port > 0 and server.thread.is_alive()
        body = fetch(server.url)
        assert "ecg_monitor_messages_total 2.0" in body
        assert "process_start_time_seconds" in body or "process_" not in body
    finally:
        server.close()
    server.close()  # idempotent
    assert not server.thread.is_alive()
    with pytest.raises(urllib.error.URLError), urllib.request.urlopen(server.url, timeout=2):
        pass
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)  # a request handler thread may still be finishing
    assert not set(threading.enumerate()) - before


def test_server_as_context_manager() -> None:
    with MetricsServer(attach(SimpleNamespace(), process=False)) as server:
        body = fetch(server.url)
    assert "ecg_monitor_health 1.0" in body
    assert not server.thread.is_alive()
