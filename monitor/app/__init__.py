"""The monitor itself: sources, wiring of the stages, the poll loop."""

from monitor.app._config import MonitorConfig
from monitor.app._intake import MAX_MESSAGE_BYTES, Intake
from monitor.app._monitor import Monitor
from monitor.app._snapshot import stream_status_of
from monitor.app._source import Source, parse_source
from monitor.app._summary import RecordSummary

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Intake",
    "Monitor",
    "MonitorConfig",
    "RecordSummary",
    "Source",
    "parse_source",
    "stream_status_of",
]
