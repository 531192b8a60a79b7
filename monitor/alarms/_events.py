"""What the rhythm logic emits: :class:`AlarmEvent` transitions and once-a-second :class:`Vitals`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.vocabulary import ALARM_KINDS, MEDIUM

__all__ = ["AlarmEvent", "Vitals"]


@dataclass(frozen=True)
class AlarmEvent:
    """A transition of one alarm episode. Samples are in the stream's own indexing.

    ``onset_sample`` is where the condition began (e.g. the last beat before an
    asystole); ``sample`` is where this transition was decided (for an onset:
    the signal that had to arrive before the alarm could be raised).
    """

    stream: str
    kind: str
    state: str  # "onset" | "update" | "end"
    onset_sample: int
    sample: int
    fs: float
    text: str
    details: Mapping[str, float | int | None] = field(default_factory=dict)
    end_reason: str | None = None
    category: str = "clinical"

    @property
    def priority(self) -> str:
        return ALARM_KINDS[self.kind].priority if self.kind in ALARM_KINDS else MEDIUM

    @property
    def alarm_id(self) -> str:
        return f"{self.stream}:{self.kind}:{self.onset_sample}"


@dataclass(frozen=True)
class Vitals:
    """Once-a-second values of one stream."""

    stream: str
    sample: int
    fs: float
    hr: float | None
    pvc_per_min: float
    quality: str
    active: tuple[str, ...]
