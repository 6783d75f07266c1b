"""What differs between database engines, behind one small interface.

The store writes portable SQLAlchemy statements (the claim query's ``FOR UPDATE SKIP LOCKED`` is rendered by
PostgreSQL and left out by SQLite, where the write lock of ``BEGIN IMMEDIATE`` gives the same exclusion).
A dialect adds only what portable SQL cannot say: how to connect, how to serialise schema creation, and how
to tell other processes that work has arrived.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import URL, ColumnElement, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from main.clock import Clock, TimeReading
from main.db.rows import NewJob
from main.errors import SettingsError
from main.settings import mask_password


class Channel(StrEnum):
    """What a process announces to the others (a NOTIFY channel on PostgreSQL)."""

    NEW_JOBS = "jobqueue_new_jobs"  # jobs became due: idle workers claim
    FINISHED_JOBS = "jobqueue_finished_jobs"  # jobs reached an end: whoever awaits a result looks


class Dialect(Protocol):
    name: str

    def create_engine(self) -> Engine:
        """An engine configured for a job queue on this database."""
        ...

    def create_read_engine(self, engine: Engine) -> Engine:
        """The engine for reads: `engine` itself where readers and writers do not block each other."""
        ...

    def one_writer_at_a_time(self) -> AbstractContextManager[object]:
        """Held around every transaction of this process: a lock where the engine has one writer at a time."""
        ...

    def lock_schema(self, connection: Connection) -> None:
        """Inside a transaction: keep other processes out while tables are created or migrated."""
        ...

    def driver_write(self, connection: Any) -> AbstractContextManager[Any]:
        """A cursor on a DB-API connection of the write engine whose write is committed when the block ends
        without error, in as few round trips as the engine allows, and rolled back otherwise."""
        ...

    def same_database(self, url: URL) -> bool:
        """Whether `url` (an application's engine) reaches the database this dialect was made for."""
        ...

    def join_write(self, cursor: Any) -> None:
        """Inside a transaction someone else began (an application's session): make sure it holds what
        `insert_jobs` needs (SQLite: the database's write lock, so that the next ids are known)."""
        ...

    def insert_jobs(self, cursor: Any, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """In `driver_write`: insert pending jobs created `now` in one statement where the driver allows, and
        announce them to workers elsewhere with when the earliest is due; returns the new ids in the order
        given."""
        ...

    def announce(self, connection: Connection, channel: Channel) -> None:
        """Inside a transaction: tell the processes listening on `channel` once it commits."""
        ...

    async def listen(self, channel: Channel, wake: Callable[[datetime | None], None]) -> None:
        """Call `wake` whenever another process announces on `channel` (or may have: SQLite cannot tell
        channels apart), with when the earliest job announced is due, or None for now or not known (workers
        claim at once and, if it is later, again then); returns at once if the engine cannot listen."""
        ...

    def create_functions(self, connection: Connection) -> None:
        """After the tables of a fresh database: the SQL functions the claim calls, where it calls any."""
        ...

    def window_start(self, now: ColumnElement[datetime], seconds: ColumnElement[float]) -> ColumnElement[datetime]:
        """SQL for `now` minus `seconds`, comparable with the stored datetimes."""
        ...

    def minute(self, at: ColumnElement[datetime]) -> ColumnElement[str]:
        """SQL for the minute of a stored datetime as 'YYYY-MM-DDTHH:MM' (UTC), to count things per minute."""
        ...

    def running_free(self, key: ColumnElement[str], most: ColumnElement[int],
                     claiming: ColumnElement[int]) -> ColumnElement[int]:
        """Inside the claim: how many more jobs of concurrency key `key` may run than run now (`most` at most),
        counted exactly: no concurrent claim of this key may count at the same time. `claiming` is the id column
        of the claim's candidates, which the claim itself may already have moved to running."""
        ...

    def starts_free(self, key: ColumnElement[str], most: ColumnElement[int], since: ColumnElement[datetime],
                    claiming: ColumnElement[int]) -> ColumnElement[int]:
        """`running_free` for rate key `key`: how many more starts fit after those since `since`."""
        ...

    def server_time(self, engine: Engine, machine: Clock) -> TimeReading | None:
        """The database server's clock read between two readings of `machine`, or None where the database has
        none of its own (a file on this machine): what ServerClock corrects this machine's clock by."""
        ...

    def relieve(self, engine: Engine, error: DBAPIError) -> None:
        """After a write through `engine` failed with `error`: whatever helps it pass; never raises."""
        ...

    def is_transient(self, error: DBAPIError) -> bool:
        """Whether waiting may cure `error` (server down or restarting, connection lost, lock contention, disk
        full) as opposed to a mistake that waiting cannot fix (read-only file, permission, authentication,
        missing database, schema mismatch)."""
        ...


def dialect_for(database_url: str, pool_size: int = 10, transaction_pooler: bool = False) -> Dialect:
    """The dialect for JOBQUEUE_DATABASE_URL, with connection pools of `pool_size` (JOBQUEUE_POOL_SIZE), through a
    pooler in transaction mode or not (JOBQUEUE_TRANSACTION_POOLER); an unsupported URL is a SettingsError naming
    it."""
    from main.db.dialects.postgres import PostgresDialect
    from main.db.dialects.sqlite import SqliteDialect

    try:
        backend = make_url(database_url).get_backend_name()
    except ArgumentError:
        raise SettingsError(
            f"JOBQUEUE_DATABASE_URL: cannot parse {mask_password(database_url)!r} as a database URL"
        ) from None
    if backend == "sqlite":
        return SqliteDialect(database_url, pool_size)
    if backend in ("postgresql", "postgres"):  # postgres:// is what most platforms hand out
        return PostgresDialect(database_url, pool_size, transaction_pooler)
    raise SettingsError(
        f"JOBQUEUE_DATABASE_URL: unsupported database {backend!r}; use sqlite:///path/to/file.db or "
        "postgresql://user@host/dbname"
    )
