"""The database handle: a write door and a read door, a thread limiter for the engine's own statements.

Writes go through ``transaction()``: on SQLite one writer at a time (``BEGIN IMMEDIATE`` behind a process
lock). Reads go through ``read()``: on SQLite a deferred transaction on a read-only connection that never takes
the write lock, so ``jobqueue status`` runs beside a writer (WAL). A write transaction opened on a thread that
is already inside one joins it: a checkpoint write that enqueues a job commits the job with the checkpoint,
instead of waiting for a lock its own thread holds.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from main.clock import Clock, TimeReading
from main.db.dialects import Dialect, dialect_for

T = TypeVar("T")
A = ParamSpec("A")

# Threads for the queue's own statements (claim, outcomes, heartbeat, maintenance), one pool per event loop:
# they never queue behind job code, which runs in limiters of its own.
ENGINE_THREADS = 4
_engine_limiter: RunVar[CapacityLimiter] = RunVar("jobqueue_engine_limiter")


class Database:
    """An engine pair (write, read), its dialect, and transaction helpers. Cheap to build; connects lazily."""

    def __init__(self, database_url: str, pool_size: int = 10, transaction_pooler: bool = False) -> None:
        self.url = database_url
        self.dialect: Dialect = dialect_for(database_url, pool_size, transaction_pooler)
        self.engine: Engine = self.dialect.create_engine()
        self.read_engine: Engine = self.dialect.create_read_engine(self.engine)
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction that commits on success and rolls back on any exception; joins the one this
        thread is already in, if any."""
        current: Session | None = getattr(self._local, "session", None)
        if current is not None:
            yield current
            return
        with (
            self.dialect.one_writer_at_a_time(),
            Session(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            self._local.session = session
            try:
                yield session
            finally:
                self._local.session = None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """`transaction()` as a Core connection: the queue's hot path, without the ORM session's cost."""
        current: Session | None = getattr(self._local, "session", None)
        if current is not None:
            yield current.connection()
            return
        with self.dialect.one_writer_at_a_time(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def driver_transaction(self) -> Iterator[Any]:
        """A DB-API cursor for one write statement, below SQLAlchemy's execution layer: for enqueue, where that
        layer would cost several times the INSERT itself. The statement is committed when the block ends
        without error (how is the dialect's `driver_write`); inside a `transaction()` it joins that one. Driver
        errors surface as SQLAlchemy's DBAPIError, as elsewhere."""
        current: Session | None = getattr(self._local, "session", None)
        if current is not None:
            with self._driver_errors():
                yield current.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
            return
        with self.dialect.one_writer_at_a_time():
            connection = self.engine.raw_connection()
            try:
                with self._driver_errors(), self.dialect.driver_write(connection.driver_connection) as cursor:
                    yield cursor
            finally:
                connection.close()

    @contextmanager
    def joined_cursor(self, connection: Connection) -> Iterator[Any]:
        """A DB-API cursor inside the transaction of someone else's connection (an application's session), holding
        the write lock the dialect needs before `insert_jobs`; nothing is committed here. Works below async
        engines too: the DB-API adapter SQLAlchemy wraps around their driver is synchronous."""
        with _driver_errors(connection.dialect.loaded_dbapi.Error):
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            self.dialect.join_write(cursor)
            yield cursor

    def _driver_errors(self) -> AbstractContextManager[None]:
        return _driver_errors(self.engine.dialect.loaded_dbapi.Error)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction; never takes SQLite's write lock, never waits for a writer."""
        with Session(self.read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    async def run(self, fn: Callable[A, T], *args: A.args, **kwargs: A.kwargs) -> T:
        """Run a blocking database call in one of the engine's own threads."""
        try:
            limiter = _engine_limiter.get()
        except LookupError:
            limiter = CapacityLimiter(ENGINE_THREADS)
            _engine_limiter.set(limiter)
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=limiter)

    def server_time(self, machine: Clock) -> TimeReading | None:
        """The database server's clock, read between two readings of `machine` (None for SQLite, whose clock is
        this machine's)."""
        return self.dialect.server_time(self.engine, machine)

    def relieve(self, error: DBAPIError) -> None:
        """After a write failed with a transient `error`: do what helps it pass (the dialect knows what)."""
        with self.dialect.one_writer_at_a_time():
            self.dialect.relieve(self.engine, error)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


@contextmanager
def _driver_errors(driver_error: type[Exception]) -> Iterator[None]:
    """Driver errors as SQLAlchemy's DBAPIError, as everywhere else."""
    try:
        yield
    except driver_error as exc:
        raise DBAPIError.instance(None, None, exc, driver_error) from exc


def describe_database_error(error: DBAPIError) -> str:
    """The driver's message on one line, without SQLAlchemy's statement and parameters (which may hold data)."""
    return " ".join(str(error.orig).split()) or type(error.orig).__name__
