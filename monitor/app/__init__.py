"""The monitor itself: sources, wiring of the stages, the poll loop."""

from monitor.app._monitor import Monitor, MonitorConfig, RecordSummary, Source, parse_source

__all__ = ["Monitor", "MonitorConfig", "RecordSummary", "Source", "parse_source"]
