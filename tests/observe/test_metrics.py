from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from monitor.errors import ConfigError
from monitor.observe import (
    LatencyHistogram,
    LatencySnapshot,
    MetricsServer,
    MonitorCollector,
    StatusSnapshot,
    StreamStatus,
    attach,
    health_of,
    parse_address,
    retire,
)


@dataclass
class Fixed:
    """A snapshot source that hands out whatever ``snap`` is now (a monitor publishes by swapping it)."""

    snap: StatusSnapshot

    def snapshot(self) -> StatusSnapshot:
        return self.snap


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def registry_of(snap: StatusSnapshot, **kw: Any) -> CollectorRegistry:
    return attach(Fixed(snap), process=False, **kw)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return str(resp.read().decode())


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


def test_a_frozen_latency_histogram_does_not_change_and_reads_the_same() -> None:
    h = LatencyHistogram()
    for v in (0.004, 0.02, 0.02, 0.3):
        h.observe(v)
    frozen = h.freeze()
    h.observe(1.0)
    assert frozen.count == 4 and h.count == 5
    assert frozen.sum == pytest.approx(0.344)
    assert frozen.cumulative()[-1] == (float("inf"), 4)
    assert frozen.percentiles_ms() != h.percentiles_ms()
    assert h.freeze().percentiles_ms() == h.percentiles_ms()
    empty = LatencySnapshot()
    assert empty.count == 0 and len(empty.counts) == len(empty.bounds) + 1
    assert empty.percentiles_ms() == {"p50": None, "p95": None, "p99": None}
    with pytest.raises(ValueError):
        LatencySnapshot(counts=(1, 2))  # one count per bucket and one for +Inf
    with pytest.raises(ConfigError):
        LatencySnapshot(bounds=(0.1, -1.0))


# --------------------------------------------------------------------------- the snapshot and the status topic
def busy_snapshot(**kw: Any) -> StatusSnapshot:
    """A monitor with an ended stream ``a`` (gaps, rejections) and an active stream ``b``."""
    latency = LatencyHistogram()
    for v in (0.004, 0.02, 0.02, 0.3):
        latency.observe(v)
    a = StreamStatus(
        "a", fs=250.0, ended=True, frames=98, frames_missing=1, samples=2450, samples_missing=25, samples_nan=30,
        rejected=Counter(duplicate=1), beats=20, suppressed=2, low_amplitude=3, restarts=1, reboots=1, conflicts=0,
        since_data_s=4.0,
    )  # fmt: skip
    b = StreamStatus("b", fs=360.0, frames=10, samples=360, beats=5, conflicts=2, shed=3, alarms_active=2,
                     since_data_s=0.5)  # fmt: skip
    fields: dict[str, Any] = dict(
        monitor="m-1", engine="cnn/cpu", uptime_s=12.34567, messages=111, rejected=Counter(undecodable=1),
        labelled=25, late=1, batches=4, batch_sizes=Counter({5: 3, 10: 1}), shed=Counter(b=3, gone=1),
        alarm_onsets={"vtach": 2, "noisy_signal": 1}, alarms_active={"high": 1, "low": 1},
        latency=latency.freeze(), bus_sent=7, bus_dropped=2, bus_subscriptions=1, streams=(a, b),
    )  # fmt: skip
    fields.update(kw)
    return StatusSnapshot(**fields)


def test_to_status_is_the_status_topic_body() -> None:
    snap = busy_snapshot()
    status = snap.to_status()
    assert list(status) == [
        "uptime_s", "streams", "streams_active", "messages", "frames", "samples", "rejected", "beats", "labelled",
        "device_restarts", "device_reboots", "stream_conflicts", "samples_missing", "late", "shed", "alarms_active",
        "latency_ms", "engine", "health", "problems",
    ]  # fmt: skip
    assert status == {
        "uptime_s": 12.346,
        "streams": 2,
        "streams_active": 1,
        "messages": 111,
        "frames": 108,
        "samples": 2810,
        "rejected": {"undecodable": 1, "duplicate": 1},
        "beats": 25,
        "labelled": 25,
        "device_restarts": 1,
        "device_reboots": 1,
        "stream_conflicts": 2,
        "samples_missing": 25,
        "late": 1,
        "shed": 4,  # the forgotten stream's shed beats still count
        "alarms_active": 2,
        "latency_ms": snap.latency.percentiles_ms(),
        "engine": "cnn/cpu",
        "health": "degraded",  # beats were shed
        "problems": [],
    }
    assert status["latency_ms"] == {"p50": 17.5, "p95": 450.0, "p99": 490.0}


def test_a_snapshot_copies_what_it_is_given() -> None:
    rejected: Counter[str] = Counter(duplicate=1)
    shed: Counter[str] = Counter(a=1)
    streams = [StreamStatus("a", rejected=rejected)]
    snap = StatusSnapshot(rejected=rejected, shed=shed, streams=tuple(streams))
    rejected["late"] += 5
    shed["a"] += 1
    assert snap.rejected == {"duplicate": 1} and snap.streams[0].rejected == {"duplicate": 1}
    assert snap.shed_total == 1
    with pytest.raises(TypeError):
        snap.shed["a"] = 9  # type: ignore[index]


def test_one_health_rule_for_the_status_topic_and_the_metric() -> None:
    assert health_of([], 0) == "ok"
    assert health_of(["stream a failed: boom"], 0) == "degraded"
    assert health_of([], 1) == "degraded"
    cases = {
        "ok": busy_snapshot(shed={}),
        "shed": busy_snapshot(),
        "engine down": busy_snapshot(shed={}, engine_problem="RuntimeError: boom", engine_errors=3),
        "stream failed": busy_snapshot(shed={}, streams=(StreamStatus("a", error="RuntimeError: boom"),)),
    }
    for case, snap in cases.items():
        status = snap.to_status()
        expected = "ok" if case == "ok" else "degraded"
        assert status["health"] == snap.health == expected, case
        assert value(registry_of(snap), "ecg_monitor_health") == (1 if expected == "ok" else 0), case
    down = cases["engine down"]
    assert down.engine_down and down.to_status()["problems"] == ["engine failed (3 times): RuntimeError: boom"]
    failed = cases["stream failed"]
    assert failed.to_status()["problems"] == ["stream a failed: RuntimeError: boom"]
    # a failed stream that saw no end-of-stream is still counted as active by the status topic
    assert failed.to_status()["streams_active"] == 1
    assert failed.streams_by_state() == {"active": 0, "ended": 0, "failed": 1}


# --------------------------------------------------------------------------- the collector
def test_a_monitor_with_no_streams_scrapes() -> None:
    snap = StatusSnapshot(monitor="m-1", engine="unclassified")
    reg = attach(Fixed(snap))
    text = generate_latest(reg).decode()
    assert 'ecg_monitor_streams{state="active"} 0.0' in text
    assert "# TYPE ecg_monitor_messages_total counter" in text
    assert "# TYPE ecg_monitor_beat_latency_seconds histogram" in text
    assert 'ecg_monitor_beat_latency_seconds_bucket{le="0.005"} 0.0' in text
    assert 'ecg_monitor_batch_size_bucket{le="1024.0"} 0.0' in text
    assert value(reg, "ecg_monitor_health") == 1
    assert value(reg, "ecg_monitor_info", engine="unclassified", monitor="m-1") == 1
    assert value(reg, "ecg_monitor_alarms_active", priority="high") == 0
    assert value(reg, "ecg_monitor_alert_messages_sent_total") == 0
    assert value(reg, "ecg_monitor_scrape_errors_total") == 0
    start = value(reg, "ecg_monitor_start_time_seconds")
    assert start is not None and abs(start - time.time()) < 60
    assert "ecg_monitor_stream_" not in text  # no per-stream series unless asked
    assert b"ecg_monitor_" not in generate_latest(REGISTRY)  # the global registry is left alone


def test_ingest_beats_and_batches_are_reported() -> None:
    snap = busy_snapshot()
    reg = registry_of(snap)
    assert value(reg, "ecg_monitor_streams", state="ended") == 1
    assert value(reg, "ecg_monitor_streams", state="active") == 1
    assert value(reg, "ecg_monitor_streams", state="failed") == 0
    assert value(reg, "ecg_monitor_messages_total") == 111
    assert value(reg, "ecg_monitor_frames_total") == 108
    assert value(reg, "ecg_monitor_samples_total") == 2810
    assert value(reg, "ecg_monitor_samples_missing_total") == 25
    assert value(reg, "ecg_monitor_samples_nan_total") == 30
    assert value(reg, "ecg_monitor_frames_missing_total") == 1
    assert value(reg, "ecg_monitor_device_restarts_total") == 1
    assert value(reg, "ecg_monitor_device_reboots_total") == 1
    assert value(reg, "ecg_monitor_conflicts_total") == 2
    assert value(reg, "ecg_monitor_frames_rejected_total", reason="duplicate") == 1  # a stream's
    assert value(reg, "ecg_monitor_frames_rejected_total", reason="undecodable") == 1  # the monitor's own
    assert value(reg, "ecg_monitor_beats_total") == 25
    assert value(reg, "ecg_monitor_beats_labelled_total") == 25
    assert value(reg, "ecg_monitor_beats_suppressed_total", why="unusable") == 2
    assert value(reg, "ecg_monitor_beats_suppressed_total", why="low_amplitude") == 3
    assert value(reg, "ecg_monitor_beats_late_total") == 1
    assert value(reg, "ecg_monitor_batches_total") == 4
    assert value(reg, "ecg_monitor_batch_size_count") == 4
    assert value(reg, "ecg_monitor_batch_size_sum") == 25
    assert value(reg, "ecg_monitor_beats_shed_total") == 4
    assert value(reg, "ecg_monitor_health") == 0
    assert value(reg, "ecg_monitor_start_time_seconds") == pytest.approx(snap.wall_time - 12.34567)
    assert value(reg, "ecg_monitor_info", engine="cnn/cpu", monitor="m-1") == 1

    assert value(reg, "ecg_monitor_beat_latency_seconds_count") == 4
    assert value(reg, "ecg_monitor_beat_latency_seconds_bucket", le="0.005") == 1
    assert value(reg, "ecg_monitor_beat_latency_seconds_bucket", le="0.025") == 3
    assert value(reg, "ecg_monitor_beat_latency_seconds_bucket", le="+Inf") == 4
    assert value(reg, "ecg_monitor_beat_latency_seconds_sum") == pytest.approx(0.344)


def test_forgotten_streams_stay_in_every_total() -> None:
    a = StreamStatus(
        "a", frames=10, samples=250, beats=4, restarts=2, reboots=1, long_gaps=1, conflicts=2,
        rejected={"duplicate": 3}, lead="MLII", boot="b7", segment="b7",
    )  # fmt: skip
    b = StreamStatus("b", frames=5, samples_missing=7, suppressed=2, low_amplitude=1, rejected={"stale": 1})
    retired = retire(retire(StreamStatus("retired"), a), b)
    assert (retired.frames, retired.beats, retired.samples_missing, retired.restarts) == (15, 4, 7, 2)
    assert (retired.reboots, retired.long_gaps) == (1, 1)
    assert (retired.lead, retired.boot, retired.segment) == ("", None, "")  # what a stream is now: no sum
    assert dict(retired.rejected) == {"duplicate": 3, "stale": 1} and retired.alarms_active == 0
    live = StreamStatus("c", frames=1, beats=1, rejected={"duplicate": 1})
    before = StatusSnapshot(streams=(a, b, live), rejected={"bad_json": 2})
    after = StatusSnapshot(streams=(live,), retired=retired, streams_forgotten=2, rejected={"bad_json": 2})
    assert before.to_status() == dict(after.to_status(), streams=3, streams_active=3)
    assert after.streams_by_state() == {"active": 1, "ended": 0, "failed": 0}
    for snap in (before, after):
        assert (snap.frames, snap.beats, snap.suppressed, snap.stream_conflicts) == (16, 5, 2, 2)
        assert (snap.device_restarts, snap.device_reboots, snap.long_gaps) == (2, 1, 1)
        assert snap.to_status()["device_reboots"] == 1
        assert snap.rejected_by_reason() == {"bad_json": 2, "duplicate": 4, "stale": 1}
    reg = registry_of(after, per_stream=True)
    assert value(reg, "ecg_monitor_frames_total") == 16
    assert value(reg, "ecg_monitor_frames_rejected_total", reason="duplicate") == 4
    assert value(reg, "ecg_monitor_beats_suppressed_total", why="low_amplitude") == 1
    assert value(reg, "ecg_monitor_streams_forgotten_total") == 2
    assert value(reg, "ecg_monitor_device_reboots_total") == 1
    assert value(reg, "ecg_monitor_stream_beats_total", stream="a") is None  # its own series is gone
    assert value(reg, "ecg_monitor_stream_beats_total", stream="c") == 1


def test_batch_size_histogram_buckets() -> None:
    reg = registry_of(StatusSnapshot(batch_sizes=Counter({1: 3, 5: 2, 256: 1, 3000: 1})))
    assert value(reg, "ecg_monitor_batch_size_bucket", le="1.0") == 3
    assert value(reg, "ecg_monitor_batch_size_bucket", le="4.0") == 3
    assert value(reg, "ecg_monitor_batch_size_bucket", le="16.0") == 5
    assert value(reg, "ecg_monitor_batch_size_bucket", le="256.0") == 6
    assert value(reg, "ecg_monitor_batch_size_bucket", le="1024.0") == 6
    assert value(reg, "ecg_monitor_batch_size_bucket", le="+Inf") == 7
    assert value(reg, "ecg_monitor_batch_size_sum") == 3 + 10 + 256 + 3000


def test_alarms_health_and_per_stream_series() -> None:
    a = StreamStatus("a", fs=250.0, beats=4, alarms_active=2, since_data_s=1.5)
    b = StreamStatus("b", fs=250.0, beats=3, alarms_active=1, since_data_s=0.25)
    snap = StatusSnapshot(
        alarm_onsets={"vtach": 2, "stream_conflict": 1, "noisy_signal": 1},
        alarms_active={"high": 2, "low": 1},  # vtach on a, the stream conflict; noisy signal on b
        streams=(a, b),
    )
    source = Fixed(snap)
    reg = attach(source, per_stream=True, process=False)
    assert value(reg, "ecg_monitor_alarms_total", kind="vtach") == 2
    assert value(reg, "ecg_monitor_alarms_total", kind="noisy_signal") == 1
    assert value(reg, "ecg_monitor_alarms_active", priority="high") == 2
    assert value(reg, "ecg_monitor_alarms_active", priority="low") == 1
    assert value(reg, "ecg_monitor_alarms_active", priority="medium") == 0
    assert value(reg, "ecg_monitor_streams", state="active") == 2
    assert value(reg, "ecg_monitor_stream_up", stream="a") == 1
    assert value(reg, "ecg_monitor_stream_alarms_active", stream="a") == 2
    assert value(reg, "ecg_monitor_stream_alarms_active", stream="b") == 1
    assert value(reg, "ecg_monitor_stream_beats_total", stream="b") == 3
    age = value(reg, "ecg_monitor_stream_last_frame_age_seconds", stream="a")
    assert age is not None and 1.5 <= age < 60
    assert value(reg, "ecg_monitor_health") == 1

    source.snap = StatusSnapshot(streams=(a, StreamStatus("b", beats=3, error="RuntimeError: boom")))
    assert value(reg, "ecg_monitor_streams", state="failed") == 1
    assert value(reg, "ecg_monitor_stream_up", stream="b") == 0
    assert value(reg, "ecg_monitor_stream_last_frame_age_seconds", stream="b") is None  # no data yet
    assert value(reg, "ecg_monitor_health") == 0
    source.snap = StatusSnapshot(shed={"a": 3}, streams=(StreamStatus("a", shed=3), b))
    assert value(reg, "ecg_monitor_health") == 0
    assert value(reg, "ecg_monitor_beats_shed_total") == 3
    assert value(reg, "ecg_monitor_stream_beats_shed_total", stream="a") == 3


def test_per_stream_rejections_are_labelled_by_reason() -> None:
    a = StreamStatus("a", rejected=Counter(duplicate=2, old_boot=1))
    b = StreamStatus("b", rejected=Counter(units=4))
    quiet = StreamStatus("c")
    snap = StatusSnapshot(streams=(a, b, quiet), rejected={"bad_json": 1})
    reg = registry_of(snap, per_stream=True)
    name = "ecg_monitor_stream_frames_rejected_total"
    assert value(reg, name, stream="a", reason="duplicate") == 2
    assert value(reg, name, stream="a", reason="old_boot") == 1
    assert value(reg, name, stream="b", reason="units") == 4
    got = families(generate_latest(reg).decode())[name]
    assert len(got) == 3  # one series per stream and reason it has; none for a stream without rejections
    assert sum(got.values()) + 1 == sum(snap.rejected_by_reason().values())
    assert name not in generate_latest(registry_of(snap)).decode()  # per-stream series only when asked


def test_a_stream_status_says_its_lead_boot_and_segment() -> None:
    st = StreamStatus("a", lead="V5", lead_fallback=False, boot="7f3a", segment="b7f3a", reboots=1, long_gaps=2)
    assert (st.lead, st.lead_fallback, st.boot, st.segment) == ("V5", False, "7f3a", "b7f3a")
    fresh = StreamStatus("b")
    assert (fresh.lead, fresh.lead_fallback, fresh.boot, fresh.segment, fresh.reboots) == ("", False, None, "", 0)
    snap = StatusSnapshot(streams=(st, fresh))
    assert (snap.device_reboots, snap.long_gaps) == (1, 2)


def test_stream_age_grows_while_no_new_snapshot_comes() -> None:
    snap = StatusSnapshot(wall_time=time.time() - 30.0, streams=(StreamStatus("a", since_data_s=2.0),))
    reg = registry_of(snap, per_stream=True)
    age = value(reg, "ecg_monitor_stream_last_frame_age_seconds", stream="a")
    assert age is not None and 32.0 <= age < 90


def test_alert_bus_counters() -> None:
    reg = registry_of(StatusSnapshot(bus_sent=7, bus_dropped=2, bus_subscriptions=1))
    assert value(reg, "ecg_monitor_alert_messages_sent_total") == 7
    assert value(reg, "ecg_monitor_alert_messages_dropped_total") == 2
    assert value(reg, "ecg_monitor_alert_subscriptions_total") == 1


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{sample name: {labels: value}}`` of one scrape."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_every_scrape_reads_one_snapshot_while_another_thread_publishes() -> None:
    source = Fixed(StatusSnapshot())
    reg = attach(source, per_stream=True, process=False)
    stop = threading.Event()

    def publisher() -> None:  # what the monitor's loop does: build a new snapshot, swap it in
        k = 0
        while not stop.is_set() and k < 2000:
            streams = tuple(StreamStatus(f"s{i}", beats=i, rejected={f"r{i % 7}": 1}) for i in range(k % 50))
            source.snap = StatusSnapshot(messages=k, rejected={"undecodable": k}, streams=streams)
            k += 1

    thread = threading.Thread(target=publisher)
    thread.start()
    scrapes = 0
    try:
        while thread.is_alive() or scrapes == 0:
            got = families(generate_latest(reg).decode())  # never raises, whatever the publisher does meanwhile
            scrapes += 1
            per_stream = got.get("ecg_monitor_stream_beats_total", {})
            assert got["ecg_monitor_beats_total"][()] == sum(per_stream.values())
            assert got["ecg_monitor_streams"][(("state", "active"),)] == len(got.get("ecg_monitor_stream_up", {}))
            rejected = got["ecg_monitor_frames_rejected_total"]
            k = got["ecg_monitor_messages_total"][()]
            assert rejected[(("reason", "undecodable"),)] == k  # the same snapshot as the other families
            assert sum(rejected.values()) == k + len(per_stream)
    finally:
        stop.set()
        thread.join()
    assert value(reg, "ecg_monitor_scrape_errors_total") == 0


class Failing:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def snapshot(self) -> StatusSnapshot:
        if self.error is not None:
            raise self.error
        return None  # type: ignore[return-value]  # a source that misbehaves


def test_collect_never_raises_when_the_source_gives_no_snapshot() -> None:
    for source in (Failing(RuntimeError("not yet")), Failing(None), object(), None):
        collector = MonitorCollector(source)  # type: ignore[arg-type]
        reg = CollectorRegistry()
        reg.register(collector)
        text = generate_latest(reg).decode()  # never raises
        assert "ecg_monitor_scrape_errors_total 1.0" in text
        assert "ecg_monitor_beats_total" not in text  # nothing is reported as 0 instead
        assert "ecg_monitor_streams{" not in text
        assert value(reg, "ecg_monitor_health") is None
    source = Fixed(StatusSnapshot())
    collector = MonitorCollector(source)
    collector.scrape_errors = 1
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    assert value(reg, "ecg_monitor_health") == 1  # served again once the source answers
    assert value(reg, "ecg_monitor_scrape_errors_total") == 1


def test_two_monitors_in_one_process() -> None:
    ra, rb = attach(Fixed(StatusSnapshot(messages=1))), attach(Fixed(StatusSnapshot()))
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


def test_server_serves_metrics_and_closes() -> None:
    before = set(threading.enumerate())
    server = MetricsServer(attach(Fixed(StatusSnapshot(messages=2))), port=0)
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
    with MetricsServer(attach(Fixed(StatusSnapshot()), process=False)) as server:
        body = fetch(server.url)
    assert "ecg_monitor_health 1.0" in body
    assert not server.thread.is_alive()
