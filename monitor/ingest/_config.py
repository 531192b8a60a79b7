"""How every stream is processed, and the counters each stream keeps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from monitor.detect import DetectorConfig, QualityConfig
from monitor.errors import ConfigError, require_positive
from monitor.protocol import MAX_FRAME_SECONDS

__all__ = ["MAX_ABS_MV", "StreamConfig", "StreamStats"]

MAX_ABS_MV = 1000.0  # larger values are not a body-surface ECG: treated as missing samples


@dataclass(frozen=True)
class StreamConfig:
    """How every stream is processed."""

    lead: int = 0
    window_pre_s: float = 0.35
    window_post_s: float = 0.45
    rr_wait_s: float = 2.0  # longest wait for the next beat before sending without rr_next
    buffer_s: float = 30.0
    max_queued_s: float = 5.0  # detection runs at once when a stream has this much queued
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    max_streams: int = 4096
    keep_peaks: bool = False  # keep every R peak (for an end-of-run summary); off for live monitoring
    # detections smaller than this (peak-to-peak within 50 ms of the R peak) are noise, not QRS complexes:
    # IEC 60601-2-27 asks that QRS complexes of 0.15 mV or less are not counted (asystole must read as such)
    min_qrs_mv: float = 0.15
    max_gap_s: float = 60.0  # longest gap filled with missing samples; beyond it a frame starts a new segment
    restart_frames: int = 3  # consecutive frames of a new sequence that make a device restart

    def __post_init__(self) -> None:
        if self.lead < 0:
            raise ConfigError(f"lead must be >= 0, got {self.lead!r}")
        require_positive(self, "window_pre_s", "window_post_s", "rr_wait_s", "buffer_s", "max_queued_s", "max_gap_s")
        needed = self.window_pre_s + self.window_post_s + self.rr_wait_s + self.max_queued_s + MAX_FRAME_SECONDS + 2
        if self.buffer_s < needed:
            raise ConfigError(f"buffer_s={self.buffer_s} is too short: windows, RR wait and queued input need {needed}")
        if self.max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {self.max_streams!r}")
        if self.restart_frames < 2:
            raise ConfigError(f"restart_frames must be >= 2, got {self.restart_frames!r}")


@dataclass
class StreamStats:
    """Counters of one stream, shown in the live view and the summary."""

    frames: int = 0  # data frames accepted
    samples: int = 0
    nan_samples: int = 0  # missing samples, gaps included
    out_of_range: int = 0  # samples beyond MAX_ABS_MV (counted in nan_samples too)
    beats: int = 0
    suppressed: int = 0  # beats found in unusable signal and not emitted
    low_amplitude: int = 0  # detections below min_qrs_mv (noise, e.g. during asystole), not emitted
    rejected: Counter[str] = field(default_factory=Counter)
    messages: int = 0  # messages routed to this stream
    eos_received: int = 0  # end-of-stream messages accepted (0 or 1)
    held: int = 0  # frames held until the restart/conflict rule decides
    restarts: int = 0  # device restarts (new segments)
    conflicts: int = 0  # episodes of a second device sending under this stream id
    eos_early: int = 0  # end-of-stream ahead of the data received
    first_arrival: float | None = None
    last_arrival: float | None = None
    ended: bool = False
    error: str | None = None

    def accounted(self) -> int:
        """Messages of this stream with a fate; equals ``messages`` (see :mod:`monitor.ingest._router`)."""
        return self.frames + self.eos_received + sum(self.rejected.values()) + self.held
