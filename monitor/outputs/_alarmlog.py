"""The alarm log: every alarm transition, one SQLite row each, kept across restarts.

The log is an SQLite database in WAL mode. The monitor is its only writer; any
number of readers (``ecg-alerts history``, a spreadsheet, ``sqlite3`` on the
command line) can read it while the monitor writes, without blocking it.

Durability: every :meth:`AlarmLog.record` call is one committed transaction.
With the default ``synchronous=NORMAL`` a committed row survives the monitor
process being killed (``SIGKILL``, a crash, the OOM killer): the row is in the
write-ahead log, which the operating system writes out on its own. Surviving a
power cut or a kernel crash needs ``synchronous=FULL`` (``durable=True``),
which syncs the write-ahead log to disk on every commit and so costs one disk
flush per alarm transition.

Rows are never updated or deleted. An alarm episode (its ``alarm_id`` within
one ``run_id``) is open while its last row is not ``end``; a monitor that
starts after a crash closes the episodes an earlier run left open with
:meth:`AlarmLog.close_orphans`.

Sample indices: ``onset_sample`` and ``sample`` are the device's own indices,
as on the bus. A body's ``boot`` and ``segment`` (and ``onset_boot``,
``onset_segment``), which the bus adds once a stream has begun a second
segment (a reboot, a device restart, a long gap), are kept in the row's
``details`` object under those names: the table keeps its columns, so a log
stays readable by every ecg-monitor of schema version 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from monitor.errors import ConfigError, EcgMonitorError

__all__ = ["LOGGED_STATES", "SCHEMA_VERSION", "SEGMENT_FIELDS", "AlarmLog", "AlarmLogError", "default_path"]

_T = TypeVar("_T")

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; a file with a larger number is refused."""

SEGMENT_FIELDS = ("boot", "segment", "onset_boot", "onset_segment")
"""Body fields kept in ``details`` (where the device's indices of the row belong)."""

LOGGED_STATES = ("onset", "update", "end")
"""Alarm states that are logged; ``active`` snapshots repeat what the log already holds."""

COLUMNS = (
    "id",
    "run_id",
    "alarm_id",
    "stream",
    "kind",
    "category",
    "priority",
    "state",
    "onset_sample",
    "sample",
    "fs",
    "text",
    "details",
    "end_reason",
    "wall_time",
    "logged_at",
)

_SCHEMA = f"""
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    alarm_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    kind TEXT NOT NULL,
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('onset', 'update', 'end')),
    onset_sample INTEGER NOT NULL,
    sample INTEGER NOT NULL,
    fs REAL NOT NULL,
    text TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{{}}',
    end_reason TEXT,
    wall_time REAL NOT NULL,
    logged_at REAL NOT NULL
);
CREATE INDEX alarms_stream_time ON alarms (stream, wall_time);
CREATE INDEX alarms_alarm_id ON alarms (alarm_id);
CREATE INDEX alarms_time ON alarms (wall_time);
PRAGMA user_version = {SCHEMA_VERSION};
"""

# the last row of every episode (run_id, alarm_id) whose last row is not an end
_OPEN_EPISODES = """
SELECT a.* FROM alarms AS a
JOIN (SELECT MAX(id) AS last FROM alarms GROUP BY run_id, alarm_id) AS l ON a.id = l.last
WHERE a.state != 'end'
"""

_INSERT = f"INSERT INTO alarms ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})"


class AlarmLogError(EcgMonitorError):
    """An alarm could not be written to the log (disk full, file removed, malformed alarm)."""


def default_path(*, create: bool = True) -> Path:
    """``$XDG_DATA_HOME/ecg-monitor/alarms.sqlite``, else ``~/.local/share/ecg-monitor/alarms.sqlite``.

    The folder is created unless ``create`` is false.
    """
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    path = root / "ecg-monitor" / "alarms.sqlite"
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"alarm log {path}: cannot create the folder ({exc})") from None
    return path


class AlarmLog:
    """Append-only log of alarm transitions in an SQLite file.

    ``run_id`` names this monitor instance (the ``monitor`` field of the bus);
    it tells this run's episodes from those of earlier runs. ``durable=True``
    selects ``synchronous=FULL`` (survives power loss, one disk flush per
    transition) instead of ``NORMAL`` (survives a killed process). ``busy_s`` is
    how long a statement waits for another process's lock before it fails.

    One thread at a time may use an instance (it may be created in one thread
    and used in another). Other processes may read the file at any time.
    Opening raises :class:`ConfigError` naming the path when the file cannot
    be created or written, is not an SQLite database, is a database of
    something else, or was written by a newer ecg-monitor.
    """

    def __init__(
        self, path: str | Path, *, run_id: str, durable: bool = False, readonly: bool = False, busy_s: float = 5.0
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.durable = durable
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        try:
            if readonly:
                if not self.path.is_file():
                    raise ConfigError(f"alarm log {self.path}: no such file")
                uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=busy_s)
            else:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(f"alarm log {self.path}: cannot create the folder ({exc})") from None
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=busy_s)
        except sqlite3.Error as exc:
            raise ConfigError(f"alarm log {self.path}: cannot open ({exc})") from None
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @classmethod
    def reader(cls, path: str | Path) -> AlarmLog:
        """Open an existing log read-only (for history queries while a monitor writes)."""
        return cls(path, run_id="", readonly=True)

    def _setup(self, conn: sqlite3.Connection) -> None:
        try:
            version = self._version(conn)
            if not self.readonly:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise ConfigError(f"alarm log {self.path}: cannot use WAL journal mode (got {mode!r})")
                conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
                if version == 0:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        # checked again under the write lock: another process may have just created it
                        if self._version(conn) == 0:
                            for statement in _SCHEMA.split(";"):
                                if statement.strip():
                                    conn.execute(statement)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
            elif version == 0:
                raise ConfigError(f"alarm log {self.path}: empty file, not an ecg-monitor alarm log")
        except sqlite3.OperationalError as exc:  # permissions, locks, a read-only file system
            raise ConfigError(f"alarm log {self.path}: cannot open it for {self._purpose} ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"alarm log {self.path}: not a usable SQLite database ({exc})") from None

    @property
    def _purpose(self) -> str:
        return "reading" if self.readonly else "writing"

    def _version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"alarm log {self.path} has schema version {version}, newer than this ecg-monitor "
                f"understands ({SCHEMA_VERSION}); upgrade ecg-monitor or use another alarm log"
            )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if (version == 0 and tables) or (version > 0 and "alarms" not in tables):
            raise ConfigError(f"alarm log {self.path}: an SQLite database, but not an ecg-monitor alarm log")
        return version

    # writing ---------------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AlarmLogError(f"alarm log {self.path} is closed")
        return self._conn

    def record(self, msg: Mapping[str, Any]) -> None:
        """Log one alarm body (as published on the bus); ``active`` snapshots are skipped.

        The row is committed before this returns.
        """
        if msg.get("state") == "active" or msg.get("snapshot") is True:
            return
        row = _row(msg, self.run_id)
        self._write(lambda c: c.execute(_INSERT, row).rowcount)

    def close_orphans(self, reason: str, wall_time: float) -> int:
        """Append an ``end`` row for every episode an earlier run left open; returns how many.

        The ``end`` row keeps the episode's own ``run_id`` (so the episode is
        closed) and carries ``reason`` as its ``end_reason``; its other fields
        repeat the episode's last row.
        """
        run_id = self.run_id
        now = time.time()

        def close(conn: sqlite3.Connection) -> int:
            rows = conn.execute(_OPEN_EPISODES + " AND a.run_id != ? ORDER BY a.id", (run_id,)).fetchall()
            for r in rows:
                ended = dict(zip(COLUMNS, r, strict=True))
                ended.update(state="end", end_reason=reason, wall_time=float(wall_time), logged_at=now)
                conn.execute(_INSERT, tuple(ended[c] for c in COLUMNS[1:]))
            return len(rows)

        return self._write(close)

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self.conn
        if self.readonly:
            raise AlarmLogError(f"alarm log {self.path} is open read-only")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise AlarmLogError(f"alarm log {self.path}: cannot write ({exc})") from None
        return result

    # reading ---------------------------------------------------------------------------------------

    def open_alarms(self) -> list[dict[str, Any]]:
        """The last row of every episode (of any run) whose last logged state is not ``end``, oldest first."""
        return self._query(_OPEN_EPISODES + " ORDER BY a.id", ())

    def history(
        self,
        stream: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 100,
        priority: str | None = None,
    ) -> list[dict[str, Any]]:
        """Logged transitions, newest first, optionally filtered.

        ``since`` (inclusive) and ``until`` (exclusive) are unix times compared
        with each row's ``wall_time``; ``limit=None`` returns every match.
        """
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("stream", stream), ("kind", kind), ("priority", priority)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("wall_time >= ?")
            args.append(float(since))
        if until is not None:
            where.append("wall_time < ?")
            args.append(float(until))
        sql = "SELECT * FROM alarms"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY wall_time DESC, id DESC"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"limit must be a positive integer, got {limit!r}")
            sql += " LIMIT ?"
            args.append(limit)
        return self._query(sql, tuple(args))

    def count(self) -> int:
        """Number of rows in the log."""
        return int(self._fetch("SELECT COUNT(*) FROM alarms", ())[0][0])

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        out = []
        for r in self._fetch(sql, args):
            row = dict(zip(COLUMNS, r, strict=True))
            with contextlib.suppress(ValueError):  # unparsable details stay text
                row["details"] = json.loads(row["details"]) if row["details"] else {}
            out.append(row)
        return out

    def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"alarm log {self.path}: cannot read ({exc})") from None

    # lifetime --------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> AlarmLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else f"run {self.run_id!r}"
        return f"AlarmLog({str(self.path)!r}, {mode})"


def _row(msg: Mapping[str, Any], run_id: str) -> tuple[Any, ...]:
    """The column values (without ``id``) for one alarm body; raises :class:`AlarmLogError`."""
    try:
        state = str(msg["state"])
        if state not in LOGGED_STATES:
            raise ValueError(f"state {state!r} is not one of {', '.join(LOGGED_STATES)}")
        fs = float(msg["fs"])
        wall_time = float(msg["time"])
        if not (math.isfinite(fs) and math.isfinite(wall_time)):
            raise ValueError("fs and time must be finite")
        end_reason = msg.get("end_reason")
        details = msg.get("details") or {}
        placed = {k: msg[k] for k in SEGMENT_FIELDS if k in msg}
        if placed:
            details = {**details, **placed}
        return (
            run_id,
            str(msg["alarm_id"]),
            str(msg["stream"]),
            str(msg["kind"]),
            str(msg["category"]),
            str(msg["priority"]),
            state,
            int(msg["onset_sample"]),
            int(msg["sample"]),
            fs,
            str(msg["text"]),
            json.dumps(details, sort_keys=True, separators=(",", ":")),
            None if end_reason is None else str(end_reason),
            wall_time,
            time.time(),
        )
    except KeyError as exc:
        raise AlarmLogError(f"alarm without the field {exc.args[0]!r}: {dict(msg)!r}") from None
    except (TypeError, ValueError) as exc:
        raise AlarmLogError(f"malformed alarm ({exc}): {dict(msg)!r}") from None
