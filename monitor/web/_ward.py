"""What the central station shows, kept from the alert bus: each bed's vitals, active alarms, strip and beats.

:class:`WardState` takes the events an :class:`monitor.outputs.AlertBridge` made of bus messages (validated,
sequence-checked, alarms tracked with snapshots) and turns each into a compact message for the page, and
gives a newly opened page the whole ward at once. Bed ids are the monitors' stream ids.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRIORITY_RANK", "WardState", "order_alarms"]

#: Alarm priorities, most urgent first (IEC 60601-1-8: high, medium, low).
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}


def order_alarms(alarms: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Highest priority first; clinical before technical at one priority; then the oldest onset first."""
    return sorted(
        alarms,
        key=lambda a: (
            PRIORITY_RANK.get(str(a.get("priority")), 3),
            a.get("category") != "clinical",
            float(a.get("onset_time") or a.get("time") or 0.0),
        ),
    )


def _alarm_view(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": body["alarm_id"],
        "kind": body["kind"],
        "category": body["category"],
        "priority": body["priority"],
        "text": body.get("text", body["kind"]),
        "onset_sample": body.get("onset_sample"),
        "time": body.get("time"),
        "monitor": body.get("monitor"),
    }


@dataclass
class _Bed:
    stream: str
    source: str
    vitals: dict[str, Any] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    wave: deque[dict[str, Any]] = field(default_factory=deque)
    beats: deque[dict[str, Any]] = field(default_factory=deque)
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)  # alarm id -> who acknowledged it, when

    def set_alarms(self, alarms: list[dict[str, Any]]) -> None:
        """The active alarms, highest priority first; an acknowledgement lasts while its alarm does."""
        ids = {a["id"] for a in alarms}
        self.acked = {k: v for k, v in self.acked.items() if k in ids}
        self.alarms = [{**a, "acked": self.acked.get(a["id"])} for a in order_alarms(alarms)]

    def view(self) -> dict[str, Any]:
        return {
            "bed": self.stream,
            "source": self.source,
            "vitals": self.vitals,
            "alarms": self.alarms,
            "wave": list(self.wave),
            "beats": list(self.beats),
        }


class WardState:
    """Every bed seen on the buses; thread-safe (bus readers write, the web server reads).

    ``strip_s`` seconds of strip and beat marks are kept per bed, so a page opened late draws a full strip.
    """

    def __init__(self, strip_s: float = 10.0) -> None:
        self.strip_s = strip_s
        self._beds: dict[str, _Bed] = {}
        self._lock = threading.Lock()

    def beds(self) -> list[str]:
        with self._lock:
            return sorted(self._beds)

    def _bed(self, stream: str, source: str) -> _Bed:
        bed = self._beds.get(stream)
        if bed is None:
            bed = self._beds[stream] = _Bed(stream, source)
        return bed

    def _trim(self, bed: _Bed, sample: int, fs: float) -> None:
        keep = sample - self.strip_s * fs
        while bed.wave and bed.wave[0]["sample"] + len(bed.wave[0]["values"]) * fs / bed.wave[0]["fs"] < keep:
            bed.wave.popleft()
        while bed.beats and bed.beats[0]["sample"] < keep:
            bed.beats.popleft()

    def apply(self, source: str, body: dict[str, Any] | None, active: dict[str, list[dict[str, Any]]]) -> list[dict]:
        """One message the bridge let through (``body``), and the bridge's active alarms of the streams it
        touched (``active``: stream -> alarm bodies; the streams whose alarms may have changed). Returns the
        messages for the pages."""
        out: list[dict[str, Any]] = []
        with self._lock:
            if body is not None:
                kind = body["type"]
                stream = body.get("stream")
                if stream is not None:
                    bed = self._bed(stream, source)
                    if kind == "wave":
                        msg = {
                            "t": "wave",
                            "bed": stream,
                            "sample": body["sample"],
                            "fs": body["fs"],
                            "source_fs": body["source_fs"],
                            "values": body["values"],
                            "stamp": body["time"],
                        }
                        bed.wave.append(msg)
                        self._trim(bed, body["sample"], body["source_fs"])
                        out.append(msg)
                    elif kind == "beat":
                        msg = {"t": "beat", "bed": stream, "sample": body["sample"], "label": body["label"]}
                        bed.beats.append(msg)
                        if bed.wave:
                            self._trim(bed, bed.wave[-1]["sample"], bed.wave[-1]["source_fs"])
                        out.append(msg)
                    elif kind == "vitals":
                        bed.vitals = {
                            "hr": body.get("hr"),
                            "quality": body.get("quality"),
                            "pvc_per_min": body.get("pvc_per_min"),
                            "sample": body["sample"],
                            "fs": body["fs"],
                        }
                        out.append({"t": "vitals", "bed": stream, **bed.vitals})
            for stream, alarms in active.items():
                bed = self._bed(stream, source)
                bed.set_alarms([_alarm_view(a) for a in alarms])
                out.append({"t": "alarms", "bed": stream, "alarms": bed.alarms})
        return out

    def acknowledge(self, stream: str, alarm_id: str, who: str, when: float) -> dict[str, Any] | None:
        """Mark an active alarm acknowledged (it stays shown until it ends); returns it, None if not active."""
        with self._lock:
            bed = self._beds.get(stream)
            found = next((a for a in bed.alarms if a["id"] == alarm_id), None) if bed is not None else None
            if bed is None or found is None:
                return None
            bed.acked[alarm_id] = {"by": who, "at": when}
            bed.set_alarms([{k: v for k, v in a.items() if k != "acked"} for a in bed.alarms])
            return dict(found)

    def alarm_messages(self, streams: Sequence[str]) -> list[dict[str, Any]]:
        with self._lock:
            return [{"t": "alarms", "bed": s, "alarms": self._beds[s].alarms} for s in streams if s in self._beds]

    def snapshot(self) -> dict[str, Any]:
        """The whole ward, for a page that just opened."""
        with self._lock:
            return {"t": "ward", "beds": [self._beds[s].view() for s in sorted(self._beds)]}
