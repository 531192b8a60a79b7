"""Alarm review in the alarm log: the ECG strip around each alarm onset, and who acknowledged which alarm.

Schema version 3 of the log adds two tables (:data:`SCHEMA_3`): ``strips`` (one per alarm episode: the
monitored lead from 10 s before to 10 s after the onset, float32 little-endian, NaN where there was no
signal) and ``acks`` (every acknowledgement: which alarm, by whom, when). :func:`strip_png` draws a strip as
ECG paper does (25 mm/s, 10 mm/mV, a 1 mm and 5 mm grid, the onset marked).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the alarm log imports this module for its schema: no import of it (or of sinks) here
    from monitor.outputs._alarmlog import AlarmLog
    from monitor.outputs._strips import Strip

__all__ = ["SCHEMA_3", "acks_of", "read_strip", "store_ack", "store_strip", "strip_png"]

SCHEMA_3 = (
    """CREATE TABLE strips (
    run_id TEXT NOT NULL,
    alarm_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    kind TEXT NOT NULL,
    onset_sample INTEGER NOT NULL,
    sample INTEGER NOT NULL,
    fs REAL NOT NULL,
    lead TEXT NOT NULL,
    units TEXT NOT NULL DEFAULT 'mV',
    samples BLOB NOT NULL,
    wall_time REAL NOT NULL,
    PRIMARY KEY (run_id, alarm_id)
)""",
    """CREATE TABLE acks (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    alarm_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    by TEXT NOT NULL,
    wall_time REAL NOT NULL
)""",
    "CREATE INDEX acks_alarm ON acks (alarm_id)",
)

_STRIP_COLUMNS = "run_id, alarm_id, stream, kind, onset_sample, sample, fs, lead, samples, wall_time"


def store_strip(log: AlarmLog, strip: Strip, wall_time: float, run_id: str | None = None) -> None:
    """Keep ``strip`` for its alarm (of ``run_id``, by default the log's run); a second one replaces it."""
    row = (
        run_id or log.run_id,
        strip.alarm_id,
        strip.stream,
        strip.kind,
        strip.onset_sample,
        strip.sample,
        strip.fs,
        strip.lead,
        np.asarray(strip.values, dtype="<f4").tobytes(),
        wall_time,
    )

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute(f"INSERT OR REPLACE INTO strips ({_STRIP_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row)

    log._write(insert)


def read_strip(log: AlarmLog, alarm_id: str) -> Strip | None:
    """The strip of ``alarm_id`` (the newest, if several runs had that id); None if none was kept."""
    if not _has_table(log, "strips"):
        return None
    rows = log._fetch(
        f"SELECT {_STRIP_COLUMNS} FROM strips WHERE alarm_id = ? ORDER BY wall_time DESC LIMIT 1", (alarm_id,)
    )
    if not rows:
        return None
    from monitor.outputs._strips import Strip

    _, aid, stream, kind, onset, sample, fs, lead, blob, _ = rows[0]
    values = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    return Strip(str(aid), str(stream), str(kind), int(onset), int(sample), float(fs), str(lead), values)


def store_ack(log: AlarmLog, run_id: str, alarm_id: str, stream: str, by: str, wall_time: float) -> None:
    def insert(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO acks (run_id, alarm_id, stream, by, wall_time) VALUES (?, ?, ?, ?, ?)",
            (run_id, alarm_id, stream, by, wall_time),
        )

    log._write(insert)


def acks_of(log: AlarmLog, alarm_id: str) -> list[dict[str, Any]]:
    """Every acknowledgement of ``alarm_id``, oldest first (``run_id``, ``by``, ``wall_time``)."""
    if not _has_table(log, "acks"):
        return []
    rows = log._fetch("SELECT run_id, by, wall_time FROM acks WHERE alarm_id = ? ORDER BY id", (alarm_id,))
    return [{"run_id": r[0], "by": r[1], "wall_time": r[2]} for r in rows]


def _has_table(log: AlarmLog, name: str) -> bool:
    return bool(log._fetch("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))[0][0])


def strip_png(strip: Strip, path: str | Path, title: str | None = None) -> Path:
    """Draw ``strip`` at 25 mm/s and 10 mm/mV on an ECG grid, the onset marked; returns the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = (strip.sample + np.arange(len(strip.values)) - strip.onset_sample) / strip.fs
    seconds = max(strip.seconds, 1.0)
    lo = float(np.nanmin(strip.values)) if np.isfinite(strip.values).any() else -1.0
    hi = float(np.nanmax(strip.values)) if np.isfinite(strip.values).any() else 1.0
    lo, hi = min(lo - 0.3, -1.0), max(hi + 0.3, 1.0)
    mm = 1 / 25.4
    fig = plt.figure(figsize=(seconds * 25 * mm, (hi - lo) * 10 * mm + 0.6))
    ax = fig.add_axes((0.0, 0.0, 1.0, (hi - lo) * 10 * mm / ((hi - lo) * 10 * mm + 0.6)))
    x0 = float(t[0]) if len(t) else 0.0
    ax.set_xlim(x0, x0 + seconds)
    ax.set_ylim(lo, hi)
    for step, colour in ((0.04, "#f6d0d0"), (0.2, "#e99b9b")):
        ax.vlines(np.arange(np.floor(x0 / step) * step, x0 + seconds, step), lo, hi, colors=colour, linewidth=0.5)
    for step, colour in ((0.1, "#f6d0d0"), (0.5, "#e99b9b")):
        ax.hlines(np.arange(np.floor(lo / step) * step, hi, step), x0, x0 + seconds, colors=colour, linewidth=0.5)
    ax.plot(t, strip.values, color="black", linewidth=0.8)
    ax.axvline(0.0, color="#c00000", linewidth=1.2)
    ax.set_axis_off()
    fig.suptitle(
        title
        or f"{strip.stream}  {strip.kind}  onset at sample {strip.onset_sample}  lead {strip.lead}  25 mm/s, 10 mm/mV",
        fontsize=9,
        y=0.99,
    )
    out = Path(path)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out
