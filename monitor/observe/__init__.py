"""Observability: status snapshot, health, latency histogram and Prometheus metrics."""

from monitor.observe._metrics import (
    BATCH_SIZE_BUCKETS,
    LATENCY_BUCKETS,
    LatencyHistogram,
    MetricsServer,
    MonitorCollector,
    attach,
    parse_address,
)

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "LatencyHistogram",
    "MetricsServer",
    "MonitorCollector",
    "attach",
    "parse_address",
]
