"""SQLite: the embedded default. Several processes may share one file; the write lock serialises claims.

Writers take the lock at BEGIN (``BEGIN IMMEDIATE``), one thread of the process at a time; readers use
connections of their own with a deferred BEGIN and ``query_only``, so in WAL mode they never wait for a
writer. There is no notification channel between processes: a worker watches the WAL file instead, which
every commit of any process changes, and wakes when it does.
"""

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    String,
    cast,
    create_engine,
    event,
    func,
    literal,
    make_url,
)
from sqlalchemy.exc import DBAPIError

from main.clock import Clock
from main.db.claim import running_with, started_with
from main.db.dialects import Channel
from main.db.rows import NO_KEYS, UNIQUE_HOLDER, JobKeys, NewJob, holder_params, refuse_duplicates
from main.db.types import naive_utc

BUSY_TIMEOUT_MS = 30_000
_COLUMNS = ("id, type, payload, status, queue, priority, attempts, max_retries, run_at, created_at, updated_at, "
            "cancel_requested")
_VALUES = "?, ?, ?, 'pending', ?, ?, 0, ?, ?, ?, ?, 0"
_INSERT = f"INSERT INTO jobs ({_COLUMNS}) VALUES ({_VALUES})"
# With the columns only some jobs have; a unique key another job holds: the row is skipped (see insert_jobs).
_INSERT_FULL = (f"INSERT INTO jobs ({_COLUMNS}, {', '.join(JobKeys.COLUMNS)}) "
                f"VALUES ({_VALUES}{', ?' * len(JobKeys.COLUMNS)}) ON CONFLICT DO NOTHING")
_HOLDER = UNIQUE_HOLDER.format(p="?")
WATCH_INTERVAL = 0.05  # seconds between looks at the WAL file: the cross-process pickup latency, at most


class SqliteDialect:
    name = "sqlite"

    def __init__(self, database_url: str, pool_size: int = 10) -> None:
        self.database_url, self.pool_size = database_url, pool_size
        self._writer_lock = threading.Lock()

    def create_engine(self) -> Engine:
        engine = self._engine()
        event.listen(engine, "begin", _begin_immediate)
        return engine

    def create_read_engine(self, engine: Engine) -> Engine:
        read_engine = self._engine()
        event.listen(read_engine, "connect", _read_only)
        event.listen(read_engine, "begin", _begin_deferred)
        return read_engine

    def one_writer_at_a_time(self) -> threading.Lock:
        """Threads of one process queue here instead of in SQLite's busy handler, which sleeps and retries
        (1, 2, 5, 10 ms ...) and so turns contention between our own threads into idle time."""
        return self._writer_lock

    def lock_schema(self, connection: Connection) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    @contextmanager
    def driver_write(self, connection: Any) -> Iterator[Any]:
        cursor = connection.cursor()
        _take_write_lock(cursor)
        try:
            yield cursor
            connection.commit()
        except BaseException:
            connection.rollback()
            raise

    def same_database(self, url: URL) -> bool:
        ours = make_url(self.database_url)
        return url.get_backend_name() == "sqlite" and _file(url) == _file(ours)

    def join_write(self, cursor: Any) -> None:
        """A write that changes nothing takes the write lock (SQLite has no statement for that once a
        transaction has begun); it waits for other writers like any write (busy_timeout)."""
        cursor.execute("UPDATE jobs SET id = id WHERE 0")

    def insert_jobs(self, cursor: Any, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """One executemany. The ids are given, not generated: the write lock is held, so the next ids are
        known (SQLite's own rowid choice is the same number), and RETURNING cannot be read from executemany.
        A job skipped for its unique key gets the id of the job holding it; no one can change that one while the
        write lock is held."""
        cursor.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs")
        first = cursor.fetchone()[0]
        ids = list(range(first, first + len(jobs)))
        stamp = _stored(now)
        rows = [(job_id, job.type, job.payload, job.queue, job.priority, job.max_retries, _stored(job.run_at), stamp,
                 stamp) for job_id, job in zip(ids, jobs, strict=True)]
        if not any(job.keys for job in jobs):
            cursor.executemany(_INSERT, rows)
            return ids
        cursor.executemany(_INSERT_FULL, [(*row, *(job.keys or NO_KEYS).values()) for row, job in zip(rows, jobs,
                                                                                                       strict=True)])
        if cursor.rowcount == len(jobs):
            return ids
        cursor.execute(f"SELECT id FROM jobs WHERE id >= {first} AND id < {first + len(jobs)}")
        written = {row[0] for row in cursor.fetchall()}
        created = [job_id in written for job_id in ids]
        for position, job in enumerate(jobs):
            if not created[position]:
                cursor.execute(_HOLDER, holder_params(job))
                ids[position] = cursor.fetchone()[0]
        refuse_duplicates(jobs, ids, created)
        return ids

    def announce(self, connection: Connection, channel: Channel) -> None:
        """Nothing to send: other processes see the WAL file change (listen)."""

    async def listen(self, channel: Channel, wake: Callable[[datetime | None], None]) -> None:
        """Wake whenever the database changed, as its WAL file shows (size, time, inode): a stat call every
        WATCH_INTERVAL, no query, no lock, whatever the channel. Commits of this process wake it too, which
        costs one look (an empty claim) too many. A file says nothing of when: a job another process enqueued
        for later is found by the poll after it is due."""
        path = make_url(self.database_url).database
        if not path or path == ":memory:":
            return
        wal = f"{path}-wal"
        seen = _signature(wal)
        while True:
            await anyio.sleep(WATCH_INTERVAL)
            now = _signature(wal)
            if now != seen:
                seen = now
                wake(None)

    def create_functions(self, connection: Connection) -> None:
        """None: the claim's counts are plain subqueries here."""

    def minute(self, at: ColumnElement[datetime]) -> ColumnElement[str]:
        return func.strftime("%Y-%m-%dT%H:%M", at)

    def window_start(self, now: ColumnElement[datetime], seconds: ColumnElement[float]) -> ColumnElement[datetime]:
        """strftime's form ('YYYY-MM-DD HH:MM:SS.SSS') compares with the stored one to the millisecond."""
        return func.strftime("%Y-%m-%d %H:%M:%f", now, literal("-") + cast(seconds, String) + literal(" seconds"))

    def running_free(self, key: ColumnElement[str], most: ColumnElement[int],
                     claiming: ColumnElement[int]) -> ColumnElement[int]:
        """A plain count: the write lock keeps every other claim out, and SQLite evaluates the claim's IN list
        before it changes a row."""
        return most - running_with(key)

    def starts_free(self, key: ColumnElement[str], most: ColumnElement[int], since: ColumnElement[datetime],
                    claiming: ColumnElement[int]) -> ColumnElement[int]:
        return most - started_with(key, since)

    def server_time(self, engine: Engine, machine: Clock) -> None:
        """A file on this machine: every process that opens it shares this machine's clock."""
        return None

    def relieve(self, engine: Engine, error: DBAPIError) -> None:
        """A full disk: copy the WAL into the database file and truncate it, which gives its space back as soon as
        there is room for the copy (a WAL that grew while the disk filled up otherwise keeps its size)."""
        if getattr(error.orig, "sqlite_errorname", "") != "SQLITE_FULL":
            return
        with contextlib.suppress(sqlite3.Error, DBAPIError):
            connection = engine.raw_connection()
            try:
                connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            finally:
                connection.close()

    def is_transient(self, error: DBAPIError) -> bool:
        return str(getattr(error.orig, "sqlite_errorname", "")).startswith(_TRANSIENT)

    def _engine(self) -> Engine:
        _create_private(make_url(self.database_url).database)
        engine = create_engine(
            self.database_url, pool_size=self.pool_size, max_overflow=2 * self.pool_size,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _configure_connection)
        return engine


# SQLite result codes (by name) that may clear up by themselves: another writer, a full disk, a passing I/O fault.
_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_PROTOCOL", "SQLITE_INTERRUPT")


def _file(url: URL) -> str:
    """The database file a SQLite URL opens (`file:` URIs included), resolved."""
    path = (url.database or "").removeprefix("file:").split("?")[0]
    return os.path.realpath(path)


def _create_private(path: str | None) -> None:
    """Create the database file readable by its owner only, before SQLite creates it with the umask's mode:
    jobs hold payloads, errors and tracebacks. SQLite gives its -wal and -shm files the database file's mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    # An existing file keeps its mode; a missing directory is SQLite's error to report, at connect.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the driver's implicit, deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor the writer them
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe against corruption
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only=ON")


def _begin_immediate(connection: Connection) -> None:
    _take_write_lock(connection.connection.driver_connection)


def _take_write_lock(cursor: Any) -> None:
    # Take the write lock when the transaction starts, so that a read-then-write transaction waits
    # (busy_timeout) instead of failing with SQLITE_BUSY when another process wrote in between.
    cursor.execute("BEGIN IMMEDIATE")


def _stored(value: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite (naive UTC, microseconds always written): the claim
    compares these strings, so every writer must produce the same form."""
    return naive_utc(value).isoformat(sep=" ", timespec="microseconds")


def _begin_deferred(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")
