"""SQLite: the embedded default. Several processes may share one file; the write lock serialises claims."""

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

BUSY_TIMEOUT_MS = 30_000


class SqliteDialect:
    name = "sqlite"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._writer_lock = threading.Lock()

    def create_engine(self) -> Engine:
        engine = create_engine(
            self.database_url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _configure_connection)
        event.listen(engine, "begin", _begin_immediate)
        return engine

    def one_writer_at_a_time(self) -> threading.Lock:
        """Threads of one process queue here instead of in SQLite's busy handler, which sleeps and retries
        (1, 2, 5, 10 ms ...) and so turns contention between our own threads into idle time."""
        return self._writer_lock

    def lock_schema(self, connection: Connection) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    def announce_new_jobs(self, connection: Connection) -> None:
        """SQLite has no cross-process channel: other processes find new jobs at their next poll."""

    async def listen_for_new_jobs(self, wake: Callable[[], None]) -> None:
        """Nothing to listen to (see announce_new_jobs)."""


def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the driver's implicit, deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor the writer them
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint; safe against corruption
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # Take the write lock when the transaction starts, so that a read-then-write transaction waits
    # (busy_timeout) instead of failing with SQLITE_BUSY when another process wrote in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
