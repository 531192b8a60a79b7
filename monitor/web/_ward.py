"""What the central station shows, kept from the alert bus: each bed's vitals, active alarms, strip and beats.

:class:`WardState` takes the events an :class:`monitor.outputs.AlertBridge` made of bus messages (validated,
sequence-checked, alarms tracked with snapshots) and turns each into a compact message for the page, and
gives a newly opened page the whole ward at once. Bed ids are the monitors' stream ids.

A second lead (``monitored`` false on a wave body) is passed to the pages as it comes (``wave2``), not kept:
it is sent only while a bed view shows the bed. For the bed view it also keeps each bed's heart-rate trend
(the mean of each 10 s of signal, 8 hours of it) and its alarm history (the last 100 alarms: onset, end and
why), both on the stream's own sample clock.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRIORITY_RANK", "WardState", "order_alarms"]

#: Alarm priorities, most urgent first (IEC 60601-1-8: high, medium, low).
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
TREND_STEP_S = 10.0  # seconds of signal per heart-rate trend point
TREND_POINTS = 2880  # 8 hours of them
HISTORY = 100  # alarms kept per bed for its history


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
        "fs": body.get("fs"),
        "time": body.get("time"),
        "monitor": body.get("monitor"),
    }


class _Trend:
    """A heart-rate trend: the mean of the rates measured in each ``TREND_STEP_S`` of signal (NaN: none).
    A stream whose samples begin again (a restarted device) goes on from the next step."""

    def __init__(self) -> None:
        self.first = -1  # the step of hr[0]
        self.hr = array("f")
        self._step = -1
        self._sum = 0.0
        self._n = 0
        self._offset = 0.0  # seconds added to the stream's own, after it began again

    def add(self, t: float, hr: float | None) -> None:
        step = math.floor((t + self._offset) / TREND_STEP_S)
        if step < self._step:
            self._offset = (self._step + 1) * TREND_STEP_S - t
            step = self._step + 1
        if step != self._step:
            self._close()
            self._step, self._sum, self._n = step, 0.0, 0
        if hr is not None and math.isfinite(hr):
            self._sum += hr
            self._n += 1

    def _close(self) -> None:
        if self._step < 0:
            return
        if self.first < 0:
            self.first = self._step
        for _ in range(self.first + len(self.hr), self._step):  # steps with no vitals at all
            self.hr.append(math.nan)
        self.hr.append(self._sum / self._n if self._n else math.nan)
        extra = len(self.hr) - TREND_POINTS
        if extra > TREND_POINTS // 8:  # trimmed now and then, not at every point
            del self.hr[:extra]
            self.first += extra

    def view(self) -> dict[str, Any]:
        hr = self.hr[-TREND_POINTS:]
        first = self.first + len(self.hr) - len(hr)
        return {
            "step_s": TREND_STEP_S,
            "start_s": first * TREND_STEP_S if first >= 0 else None,
            "hr": [round(v, 1) if math.isfinite(v) else None for v in hr],
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
    trend: _Trend = field(default_factory=_Trend)
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    lead: str = ""

    def set_alarms(self, alarms: list[dict[str, Any]]) -> None:
        """The active alarms, highest priority first; an acknowledgement lasts while its alarm does. The
        history gains the new ones; those no longer active are ended there."""
        ids = {a["id"] for a in alarms}
        self.acked = {k: v for k, v in self.acked.items() if k in ids}
        self.alarms = [{**a, "acked": self.acked.get(a["id"])} for a in order_alarms(alarms)]
        known = {h["id"]: h for h in self.history}
        for a in alarms:
            if a["id"] not in known:
                self.history.append(
                    {
                        **{k: a[k] for k in ("id", "kind", "category", "priority", "text", "onset_sample")},
                        "fs": a.get("fs"),
                        "end_sample": None,
                        "end_reason": None,
                        "active": True,
                    }
                )
        for h in self.history:
            if h["active"] and h["id"] not in ids:
                h["active"] = False

    def ended(self, body: dict[str, Any]) -> None:
        """An alarm's end, as published: its sample and why."""
        for h in self.history:
            if h["id"] == body["alarm_id"]:
                h.update(active=False, end_sample=body.get("sample"), end_reason=body.get("end_reason"))

    def bed_view(self) -> dict[str, Any]:
        return {
            "bed": self.stream,
            "lead": self.lead,
            "vitals": self.vitals,
            "alarms": self.alarms,
            "trend": self.trend.view(),
            "history": [dict(h, acked=self.acked.get(h["id"])) for h in reversed(self.history)],
        }

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
                    if kind == "alarm":
                        if body.get("state") == "end":
                            bed.ended(body)
                    elif kind == "ack":  # acknowledged at any station: shown on every page
                        if self._acknowledge(stream, body["alarm_id"], body["by"], body["at"]) is not None:
                            out.append({"t": "alarms", "bed": stream, "alarms": bed.alarms})
                    elif kind == "wave" and body.get("monitored") is False:  # a second lead: the bed view's
                        out.append(
                            {
                                "t": "wave2",
                                "bed": stream,
                                "lead": body.get("lead", ""),
                                "sample": body["sample"],
                                "fs": body["fs"],
                                "source_fs": body["source_fs"],
                                "values": body["values"],
                            }
                        )
                    elif kind == "wave":
                        bed.lead = str(body.get("lead") or bed.lead)
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
                        bed.trend.add(body["sample"] / body["fs"], body.get("hr"))
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

    def source_of(self, stream: str) -> str | None:
        """The bus a bed is read from (None for a bed never seen)."""
        with self._lock:
            bed = self._beds.get(stream)
            return bed.source if bed is not None else None

    def active_alarm(self, stream: str, alarm_id: str) -> dict[str, Any] | None:
        """An active alarm's page view (``id``, ``monitor``...), None if it is not active."""
        with self._lock:
            bed = self._beds.get(stream)
            found = next((a for a in bed.alarms if a["id"] == alarm_id), None) if bed is not None else None
            return dict(found) if found is not None else None

    def acknowledge(self, stream: str, alarm_id: str, who: str, when: float) -> dict[str, Any] | None:
        """Mark an active alarm acknowledged (it stays shown until it ends); returns it, None if not active."""
        with self._lock:
            return self._acknowledge(stream, alarm_id, who, when)

    def _acknowledge(self, stream: str, alarm_id: str, who: str, when: float) -> dict[str, Any] | None:
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

    def bed_view(self, stream: str) -> dict[str, Any] | None:
        """One bed in full (its trend and alarm history too), for the bed view; None for a bed never seen."""
        with self._lock:
            bed = self._beds.get(stream)
            return bed.bed_view() if bed is not None else None

    def snapshot(self) -> dict[str, Any]:
        """The whole ward, for a page that just opened."""
        with self._lock:
            return {"t": "ward", "beds": [self._beds[s].view() for s in sorted(self._beds)]}
