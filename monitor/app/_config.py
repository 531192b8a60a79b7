"""Settings of the monitor as a whole (each stage's own settings are nested)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine import BatcherConfig
from monitor.alarms import RhythmSettings
from monitor.errors import ConfigError, require_positive
from monitor.ingest import StreamConfig
from replay import ReplayConfig

__all__ = ["MonitorConfig"]


@dataclass(frozen=True)
class MonitorConfig:
    """What a monitor runs with; the CLI builds it from flags, tests and benchmarks directly."""

    stream: StreamConfig = field(default_factory=StreamConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    annotations: Path | None = None  # write DIR/<stream>.mon WFDB annotation files
    poll_ms: int = 100
    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    rhythm: RhythmSettings = field(default_factory=RhythmSettings)
    alerts: str | None = None  # endpoint of the alert bus (XPUB), None: no bus
    wave: bool = False  # also publish each stream's waveform strip on the bus (wave/<stream>/)
    alarm_log: Path | None = None  # SQLite alarm log, None: none
    status_interval_s: float = 5.0
    keys: Path | None = None  # CURVE keys folder (ecg-keys): authenticate devices and bridges
    # how often decided rhythm transitions are collected and published (wall time); decisions do not depend on it
    rhythm_interval_s: float = 0.25
    shed_clear_s: float = 10.0  # a beats-shed technical alarm ends after this long without shedding
    silence_s: float = 5.0  # a live stream with no data this long (wall time) raises 'signal lost'
    retain_ended_s: float = 60.0  # live sources: an ended stream is forgotten this long after its end
    stream_timeout_s: float = 600.0  # a live stream with no data this long (wall time) is ended
    engine_thread: bool = True  # label batches on a thread of their own (not in lockstep runs)

    def __post_init__(self) -> None:
        require_positive(
            self, "status_interval_s", "rhythm_interval_s", "shed_clear_s", "silence_s", "stream_timeout_s"
        )
        if self.stream_timeout_s < self.silence_s:
            raise ConfigError(
                f"stream_timeout_s ({self.stream_timeout_s:g} s) must be at least silence_s ({self.silence_s:g} s): "
                "a silent device raises 'signal lost' before its stream is ended"
            )
