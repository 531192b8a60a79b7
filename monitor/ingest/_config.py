"""How every stream is processed, and the counters each stream keeps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.detect import DetectorConfig, QualityConfig
from monitor.errors import ConfigError, require_positive
from monitor.protocol import MAX_FRAME_SECONDS

__all__ = ["MAX_ABS_MV", "RejectionCounter", "StreamConfig", "StreamStats"]

MAX_ABS_MV = 1000.0  # larger values are not a body-surface ECG: treated as missing samples


@dataclass(frozen=True)
class StreamConfig:
    """How every stream is processed.

    ``lead`` is the monitored lead, or a preference list of them: channel names
    (matched case-insensitively, e.g. ``("MLII", "II", "V5")``) and/or channel
    indices, the first one a stream has winning (chosen on its first frame);
    a stream with none of them is monitored on channel 0, counted in
    ``stats.lead_fallback``.
    """

    lead: int | str | Sequence[int | str] = 0
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
    # keep a second lead (the first channel other than the monitored one) for display only: the last
    # DISPLAY_S seconds, read by the waveform strips (a central station's bed view); never analysed
    second_lead: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.lead, (int, str)):
            object.__setattr__(self, "lead", tuple(self.lead))
        prefs = self.leads
        if not prefs:
            raise ConfigError("lead must name at least one lead")
        for want in prefs:
            if isinstance(want, bool) or not isinstance(want, (int, str)):
                raise ConfigError(f"lead must hold channel names or indices, got {want!r}")
            if isinstance(want, int) and want < 0:
                raise ConfigError(f"lead must be >= 0, got {want!r}")
            if isinstance(want, str) and not 1 <= len(want.strip()) <= 64:
                raise ConfigError(f"lead name {want!r} must have 1 to 64 characters")
        require_positive(self, "window_pre_s", "window_post_s", "rr_wait_s", "buffer_s", "max_queued_s", "max_gap_s")
        needed = self.window_pre_s + self.window_post_s + self.rr_wait_s + self.max_queued_s + MAX_FRAME_SECONDS + 2
        if self.buffer_s < needed:
            raise ConfigError(f"buffer_s={self.buffer_s} is too short: windows, RR wait and queued input need {needed}")
        if self.max_streams < 1:
            raise ConfigError(f"max_streams must be >= 1, got {self.max_streams!r}")
        if self.restart_frames < 2:
            raise ConfigError(f"restart_frames must be >= 2, got {self.restart_frames!r}")

    @property
    def leads(self) -> tuple[int | str, ...]:
        """The lead preference as a tuple (one entry when ``lead`` is a single name or index)."""
        if isinstance(self.lead, (int, str)):
            return (self.lead,)
        return tuple(self.lead)


class RejectionCounter(Counter[str]):
    """Rejections by reason; ``listener(reason, count)`` hears of each increase (to log it)."""

    listener: Callable[[str, int], None] | None = None

    def __setitem__(self, reason: str, value: int) -> None:
        increase = value - self.get(reason, 0)
        super().__setitem__(reason, value)
        listener = self.listener
        if listener is not None and increase > 0:
            listener(reason, increase)


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
    rejected: RejectionCounter = field(default_factory=RejectionCounter)
    messages: int = 0  # messages routed to this stream
    eos_received: int = 0  # end-of-stream messages accepted (0 or 1)
    held: int = 0  # frames held until the restart/conflict rule decides
    restarts: int = 0  # device restarts: new boot ids (v2) and restarts recognised from the sequence (v1)
    reboots: int = 0  # of which: a new boot id (v2)
    long_gaps: int = 0  # gaps over max_gap_s within one boot (v2): a new segment, no restart
    lead_fallback: int = 0  # 1 when none of the preferred leads exists and channel 0 is monitored
    eos_total: int = 0  # v1 end-of-stream accepted under the "total samples sent" reading
    conflicts: int = 0  # episodes of a second device sending under this stream id
    eos_early: int = 0  # end-of-stream ahead of the data received
    first_arrival: float | None = None
    last_arrival: float | None = None
    ended: bool = False
    error: str | None = None

    def accounted(self) -> int:
        """Messages of this stream with a fate; equals ``messages`` (see :mod:`monitor.ingest._router`)."""
        return self.frames + self.eos_received + sum(self.rejected.values()) + self.held
