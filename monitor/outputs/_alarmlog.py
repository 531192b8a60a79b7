"""The alarm log: every alarm transition, one SQLite row each, kept across restarts.

The log is an SQLite database in WAL mode. Any number of readers (``ecg-alerts
history``, a spreadsheet, ``sqlite3``) can read it while monitors write it.

Durability: every :meth:`AlarmLog.record` call is one committed transaction.
With the default ``synchronous=NORMAL`` a committed row survives the monitor
process being killed (``SIGKILL``, a crash, the OOM killer): the row is in the
write-ahead log, which the operating system writes out on its own. Surviving a
power cut or a kernel crash needs ``synchronous=FULL`` (``durable=True``),
which syncs the write-ahead log to disk on every commit and so costs one disk
flush per alarm transition.

A reader of a durable stream, which delivers at least once, records with ``once``: a transition (``alarm_id``,
``state``, ``sample``) already in the log for the run is not stored again (:attr:`AlarmLog.repeated`).

Alarm rows are never updated or deleted. An alarm episode (its ``alarm_id``
within one ``run_id``) is open while its last row is not ``end``. An episode
ends at most once: the database itself (a trigger) drops an ``update`` or
``end`` row for an episode whose last row is already ``end``, whoever writes
it; :attr:`AlarmLog.ignored` counts this instance's dropped rows.

Sharing: several monitors may write one log. Each writer registers its run in
the ``runs`` table (id, host, pid, boot id, start time, heartbeat) and marks it
ended when it closes. :meth:`AlarmLog.close_orphans` closes only the open
episodes of runs that are provably over (see :func:`_over`), never those of a
live run, and each closing row names the run. A pid reused by another process
after its run died (on the same boot) keeps that run's episodes open until
that process ends.

Sample indices: ``onset_sample`` and ``sample`` are the device's own indices,
as on the bus. A body's ``boot`` and ``segment`` (and ``onset_boot``,
``onset_segment``), which the bus adds once a stream has begun a second
segment (a reboot, a device restart, a long gap), are kept in the row's
``details`` object under those names: the ``alarms`` table keeps the columns of
schema version 1.

Schema versions: 1 is the ``alarms`` table; 2 adds ``runs``, the episode index
and the end-once trigger; 3 the review ``strips`` and ``acks`` (``_reviews``). A
writer migrates an older log in one transaction; a reader reads a version-1 log
as it is; a newer version is refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from monitor.errors import ConfigError, EcgMonitorError
from monitor.outputs._reviews import SCHEMA_3

__all__ = [
    "HEARTBEAT_S",
    "LOGGED_STATES",
    "SCHEMA_VERSION",
    "SEGMENT_FIELDS",
    "STALE_S",
    "AlarmLog",
    "AlarmLogError",
    "default_path",
]

_T = TypeVar("_T")

SCHEMA_VERSION = 3
"""Stored in ``PRAGMA user_version``; a file with a larger number is refused."""

SEGMENT_FIELDS = ("boot", "segment", "onset_boot", "onset_segment")
"""Body fields kept in ``details`` (where the device's indices of the row belong)."""

LOGGED_STATES = ("onset", "update", "end")
"""Alarm states that are logged; ``active`` snapshots repeat what the log already holds."""

HEARTBEAT_S = 5.0
"""How often a writer's background thread renews its run's heartbeat (seconds)."""

STALE_S = 60.0
"""A run on another host whose heartbeat is older than this (seconds) counts as over."""

COLUMNS = tuple(
    "id run_id alarm_id stream kind category priority state onset_sample sample fs text details end_reason "
    "wall_time logged_at".split()
)

_SCHEMA_1 = (
    """CREATE TABLE alarms (
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
    details TEXT NOT NULL DEFAULT '{}',
    end_reason TEXT,
    wall_time REAL NOT NULL,
    logged_at REAL NOT NULL
)""",
    "CREATE INDEX alarms_stream_time ON alarms (stream, wall_time)",
    "CREATE INDEX alarms_alarm_id ON alarms (alarm_id)",
    "CREATE INDEX alarms_time ON alarms (wall_time)",
)

_SCHEMA_2 = (
    """CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    boot_id TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    heartbeat REAL NOT NULL,
    ended_at REAL
)""",
    "CREATE INDEX alarms_episode ON alarms (run_id, alarm_id)",
    # an episode ends once: a later update or end of an ended episode is dropped (a new onset starts a new one)
    """CREATE TRIGGER alarms_end_once BEFORE INSERT ON alarms
WHEN NEW.state != 'onset' AND (
    SELECT state FROM alarms WHERE run_id = NEW.run_id AND alarm_id = NEW.alarm_id ORDER BY id DESC LIMIT 1
) = 'end'
BEGIN SELECT RAISE(IGNORE); END""",
)

_MIGRATIONS = {1: _SCHEMA_1, 2: _SCHEMA_2, 3: SCHEMA_3}  # version -> the statements bringing the one before to it
_TABLES = {1: "alarms", 2: "runs", 3: "strips"}  # version -> the table it adds

# the last row of every episode (run_id, alarm_id) whose last row is not an end
_OPEN_EPISODES = """
SELECT a.* FROM alarms AS a
JOIN (SELECT MAX(id) AS last FROM alarms GROUP BY run_id, alarm_id) AS l ON a.id = l.last
WHERE a.state != 'end'
"""

_SEEN = "SELECT 1 FROM alarms WHERE run_id = ? AND alarm_id = ? AND state = ? AND sample = ? LIMIT 1"
_INSERT = f"INSERT INTO alarms ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * (len(COLUMNS) - 1))})"

RUN_COLUMNS = ("run_id", "host", "pid", "boot_id", "started_at", "heartbeat", "ended_at")

_REGISTER = """
INSERT INTO runs (run_id, host, pid, boot_id, started_at, heartbeat) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET
    host = excluded.host, pid = excluded.pid, boot_id = excluded.boot_id, heartbeat = excluded.heartbeat,
    ended_at = NULL
"""

_BEAT = "UPDATE runs SET heartbeat = ? WHERE run_id = ? AND ended_at IS NULL"


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
    """Append-only log of alarm transitions in an SQLite file, safe to share between monitors.

    ``run_id`` names this monitor instance (the ``monitor`` field of the bus);
    it tells this run's episodes from those of other runs. ``durable=True``
    selects ``synchronous=FULL`` (survives power loss, one disk flush per
    transition) instead of ``NORMAL`` (survives a killed process). ``busy_s`` is
    how long a statement waits for another process's lock before it fails.
    A writer registers its run and renews the run's heartbeat every
    ``heartbeat_s`` seconds from a background thread with its own connection
    (``None``: only on writes and :meth:`heartbeat` calls); :meth:`close` marks
    the run ended.

    One thread at a time may use an instance (it may be created in one thread
    and used in another). Other processes may read the file at any time.
    Opening raises :class:`ConfigError` naming the path when the file cannot
    be created or written, is not an SQLite database, is a database of
    something else, or was written by a newer ecg-monitor.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        run_id: str,
        durable: bool = False,
        readonly: bool = False,
        busy_s: float = 5.0,
        heartbeat_s: float | None = HEARTBEAT_S,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.durable = durable
        self.readonly = readonly
        self.ignored = 0
        """Rows this instance wrote for an episode that had already ended, which the log dropped."""
        self.repeated = 0
        """Transitions recorded ``once`` that the log already held."""
        self._conn: sqlite3.Connection | None = None
        self._beating: threading.Event | None = None
        self._beater: threading.Thread | None = None
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
        if not readonly and heartbeat_s is not None:
            self._start_heartbeat(heartbeat_s)

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
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # checked again under the write lock: another process may have just brought it up to date
                    version = self._version(conn)
                    for target in range(version + 1, SCHEMA_VERSION + 1):
                        for statement in _MIGRATIONS[target]:
                            conn.execute(statement)
                    if version < SCHEMA_VERSION:
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    now = time.time()
                    conn.execute(_REGISTER, (self.run_id, socket.gethostname(), os.getpid(), _boot_id(), now, now))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            elif version == 0:
                raise ConfigError(f"alarm log {self.path}: empty file, not an ecg-monitor alarm log")
        except sqlite3.OperationalError as exc:  # permissions, locks, a read-only file system
            purpose = "reading" if self.readonly else "writing"
            raise ConfigError(f"alarm log {self.path}: cannot open it for {purpose} ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"alarm log {self.path}: not a usable SQLite database ({exc})") from None

    def _version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"alarm log {self.path} has schema version {version}, newer than this ecg-monitor "
                f"understands ({SCHEMA_VERSION}); upgrade ecg-monitor or use another alarm log"
            )
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        needed = {table for v, table in _TABLES.items() if v <= version}
        if (version == 0 and tables) or not needed <= tables:
            raise ConfigError(f"alarm log {self.path}: an SQLite database, but not an ecg-monitor alarm log")
        return version

    def _start_heartbeat(self, interval_s: float) -> None:
        stop = threading.Event()
        args = (self.path, self.run_id, interval_s, stop)
        self._beater = threading.Thread(target=_beat, args=args, name="alarm-log-heartbeat", daemon=True)
        self._beater.start()
        self._beating = stop
        weakref.finalize(self, stop.set)  # an instance dropped without close() stops its thread too

    # writing ---------------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AlarmLogError(f"alarm log {self.path} is closed")
        return self._conn

    def record(self, msg: Mapping[str, Any], *, once: bool = False) -> bool:
        """Log one alarm body (as published on the bus); ``active`` snapshots are skipped.

        The row is committed (and the run's heartbeat renewed) before this
        returns. Returns whether a row was added: an ``update`` or ``end`` of
        an episode that has already ended (closed by another monitor that
        judged this run over) is dropped and counted in :attr:`ignored`; with
        ``once``, a transition the run already logged is counted in :attr:`repeated`.
        """
        if msg.get("state") == "active" or msg.get("snapshot") is True:
            return False
        row = _row(msg, self.run_id)
        beat = (row[-1], self.run_id)

        def insert(conn: sqlite3.Connection) -> int:
            if once and conn.execute(_SEEN, (row[0], row[1], row[6], row[8])).fetchone() is not None:
                return -1
            added = int(conn.execute(_INSERT, row).rowcount)
            conn.execute(_BEAT, beat)
            return added

        added = self._write(insert)
        self.repeated += added < 0
        self.ignored += added == 0
        return added > 0

    def heartbeat(self, now: float | None = None) -> None:
        """Renew this run's heartbeat (wall time ``now``, default the current time)."""
        beat = (time.time() if now is None else float(now), self.run_id)
        self._write(lambda c: c.execute(_BEAT, beat).rowcount)

    def close_orphans(self, reason: str, wall_time: float, *, stale_s: float = STALE_S) -> int:
        """Append an ``end`` row for every episode that a run which is over left open; returns how many.

        A run is over when it ended, when it ran on this host and its process
        is gone (or the host has rebooted since), or when it ran on another
        host and its heartbeat is older than ``stale_s`` seconds; this run and
        every live run keep their episodes. The ``end`` row keeps the
        episode's own ``run_id`` (so the episode is closed) and has the
        ``end_reason`` "``reason``; run ... <why it is over>"; its other
        fields repeat the episode's last row.
        """
        now = time.time()
        return self._write(lambda c: _close_over(c, self.run_id, reason, float(wall_time), now, stale_s))

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

    def runs(self) -> list[dict[str, Any]]:
        """The registered runs (``run_id``, ``host``, ``pid``, ``boot_id``, ``started_at``,
        ``heartbeat``, ``ended_at``), oldest first; empty for a log of schema version 1."""
        if self._fetch("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs'", ())[0][0] == 0:
            return []
        rows = self._fetch("SELECT * FROM runs ORDER BY started_at, run_id", ())
        return [dict(zip(RUN_COLUMNS, r, strict=True)) for r in rows]

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
        """Stop the heartbeat, mark this run ended (a writer) and close the file."""
        if self._beating is not None and self._beater is not None:
            self._beating.set()
            self._beater.join()
            self._beating = self._beater = None
        if self._conn is not None:
            if not self.readonly:
                now = time.time()
                with contextlib.suppress(sqlite3.Error):  # a run left unmarked is found over by its process
                    self._conn.execute("UPDATE runs SET ended_at = ?, heartbeat = ? WHERE run_id = ?",
                                       (now, now, self.run_id))  # fmt: skip
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


def _boot_id() -> str:
    """This host's boot id (Linux), empty where there is none: tells a rebooted host's old runs apart."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (whoever owns it); true when that cannot be told."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill with signal 0 would interrupt the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def _over(run_id: str, run: Mapping[str, Any] | None, now: float, stale_s: float) -> str | None:
    """Why the run ``run_id`` is over (naming it), or ``None`` when it may still be running."""
    host = socket.gethostname()
    if run is None:  # written by an ecg-monitor of schema version 1: only its id tells where it ran
        parts = run_id.rsplit("-", 3)
        if len(parts) == 4 and parts[0] == host and parts[1].isdigit() and _pid_alive(int(parts[1])):
            return None
        return f"run {run_id} (not registered: an earlier ecg-monitor) left it open"
    where = f"run {run_id} (pid {run['pid']} on {run['host']})"
    if run["ended_at"] is not None:
        return f"{where} ended without closing it"
    if run["host"] == host:
        boot = _boot_id()
        if run["boot_id"] and boot and run["boot_id"] != boot:
            return f"{where} was stopped by a restart of the host"
        if not _pid_alive(int(run["pid"])):
            return f"{where} is no longer running"
        return None
    age = now - float(run["heartbeat"])
    if age > stale_s:
        return f"{where} has sent no heartbeat for {age:.0f} s"
    return None


def _beat(path: Path, run_id: str, interval_s: float, stop: threading.Event) -> None:
    """Renew ``run_id``'s heartbeat every ``interval_s`` seconds until ``stop`` is set (a background thread)."""
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=rw"  # never creates a file that was removed
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=min(interval_s, 1.0))
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        while not stop.wait(interval_s):
            with contextlib.suppress(sqlite3.Error):  # a busy or full log: the next beat tries again
                conn.execute(_BEAT, (time.time(), run_id))
    except sqlite3.Error:
        return
    finally:
        conn.close()


def _close_over(
    conn: sqlite3.Connection, run_id: str, reason: str, wall_time: float, now: float, stale_s: float
) -> int:
    """:meth:`AlarmLog.close_orphans` within its transaction."""
    rows = conn.execute(_OPEN_EPISODES + " AND a.run_id != ? ORDER BY a.id", (run_id,)).fetchall()
    runs = {r[0]: dict(zip(RUN_COLUMNS, r, strict=True)) for r in conn.execute("SELECT * FROM runs")}
    verdicts: dict[str, str | None] = {}
    closed = 0
    for r in rows:
        ended = dict(zip(COLUMNS, r, strict=True))
        other = ended["run_id"]
        if other not in verdicts:
            verdicts[other] = _over(other, runs.get(other), now, stale_s)
        why = verdicts[other]
        if why is None:  # a live run: its episodes are its own to close
            continue
        ended.update(state="end", end_reason=f"{reason}; {why}", wall_time=wall_time, logged_at=now)
        closed += conn.execute(_INSERT, tuple(ended[c] for c in COLUMNS[1:])).rowcount
    return closed
