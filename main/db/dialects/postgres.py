"""PostgreSQL: the scale-out engine. Many workers on many machines share one database;
claims skip rows locked by others and LISTEN/NOTIFY wakes idle workers when jobs arrive."""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import anyio
import psycopg
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    create_engine,
    event,
    func,
    literal_column,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, DisconnectionError

from main.base.jobs.backoff import outage_delay
from main.clock import Clock, TimeReading
from main.db.dialects import Channel
from main.db.rows import NO_KEYS, UNIQUE_HOLDER, JobKeys, NewJob, holder_params, refuse_duplicates
from main.db.types import naive_utc
from main.errors import JobQueueError
from main.log import get_logger

PING_AFTER_IDLE = 1.0  # seconds a pooled connection may rest before it is checked on checkout

# Every column a new job sets, with its SQL array type: the rows travel as one array per column.
_COLUMNS = [("type", "varchar[]"), ("payload", "json[]"), ("queue", "varchar[]"), ("priority", "int[]"),
            ("max_retries", "int[]"), ("run_at", "timestamp[]")]
# ... and those that only some jobs have: unique keys and limits.
_OPTIONAL_COLUMNS = list(zip(JobKeys.COLUMNS, ("varchar[]", "varchar[]", "varchar[]", "int[]", "varchar[]", "int[]",
                                                "float8[]", "json[]"), strict=True))


def _insert(columns: list[tuple[str, str]], conflict: str = "", returning: str = "id") -> str:
    names = ", ".join(name for name, _ in columns)
    return (
        f"WITH new AS (INSERT INTO jobs ({names}, status, attempts, created_at, updated_at, cancel_requested) "
        f"SELECT {names}, 'pending', 0, %(now)s, %(now)s, false "
        f"FROM unnest({', '.join(f'%({name})s::{array}' for name, array in columns)}) "
        f"WITH ORDINALITY AS row({names}, position) ORDER BY position {conflict}RETURNING {returning}) "
        f"SELECT {returning} FROM new CROSS JOIN (SELECT pg_notify('{Channel.NEW_JOBS.value}', %(due)s)) AS announce"
    )


_INSERT = _insert(_COLUMNS)
# One job (an enqueue one by one, the common case): plain parameters, cheaper to send than arrays of one.
_INSERT_ONE = (
    f"WITH new AS (INSERT INTO jobs ({', '.join(name for name, _ in _COLUMNS)}, status, attempts, created_at, "
    f"updated_at, cancel_requested) VALUES (%s, %s::json, %s, %s, %s, %s, 'pending', 0, %s, %s, false) RETURNING id) "
    f"SELECT id FROM new CROSS JOIN (SELECT pg_notify('{Channel.NEW_JOBS.value}', %s)) AS announce"
)
# With every column: a row whose unique key another job holds is skipped (any unique index: no conflict target).
_INSERT_FULL = _insert(_COLUMNS + _OPTIONAL_COLUMNS, "ON CONFLICT DO NOTHING ", "id, type, unique_key")
_HOLDER = UNIQUE_HOLDER.format(p="%s")
_UNIQUE_ATTEMPTS = 5  # a key's holder may finish between the insert and the look-up: insert again, so often
# What main/db/migrations/versions/0007_limits.py installs, for a fresh database (volatile: a snapshot per query).
_LIMIT_FUNCTIONS = """
CREATE OR REPLACE FUNCTION jobqueue_running_free(key text, most integer, claiming bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1785686641, hashtext(key)) THEN
        RETURN 0;
    END IF;
    RETURN most - (SELECT count(*) FROM jobs WHERE status = 'running' AND concurrency_key = key
                   AND id <> ALL (claiming));
END $$;
CREATE OR REPLACE FUNCTION jobqueue_starts_free(key text, most integer, since timestamp, claiming bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1785686642, hashtext(key)) THEN
        RETURN 0;
    END IF;
    RETURN most - (SELECT count(*) FROM jobs WHERE rate_key = key AND started_at > since AND id <> ALL (claiming));
END $$;
"""
_SCHEMA_LOCK_KEY = 0x6A6F6271  # "jobq": an arbitrary, fixed advisory-lock key
_FIRST_RECONNECT_DELAY = 0.1


class PostgresDialect:
    name = "postgresql"

    def __init__(self, database_url: str, pool_size: int = 10, transaction_pooler: bool = False) -> None:
        # Whatever driver the URL names (postgres://, postgresql+psycopg2://...), we talk through psycopg 3.
        self.url = make_url(database_url).set(drivername="postgresql+psycopg")
        self.pool_size, self.transaction_pooler = pool_size, transaction_pooler

    def create_engine(self) -> Engine:
        # Behind a pooler in transaction mode, consecutive transactions of one connection may run on different
        # server sessions: a statement prepared in one is unknown in the next, so none is prepared.
        connect_args = {"prepare_threshold": None} if self.transaction_pooler else {}
        engine = create_engine(self.url, pool_size=self.pool_size, max_overflow=2 * self.pool_size,
                               connect_args=connect_args)
        event.listen(engine, "checkout", _ping_if_idle)
        event.listen(engine, "checkin", _note_last_use)
        return engine

    def create_read_engine(self, engine: Engine) -> Engine:
        """MVCC: readers never wait for writers; one pool serves both."""
        return engine

    def one_writer_at_a_time(self) -> nullcontext[None]:
        """PostgreSQL takes row locks: transactions of one process need not queue."""
        return nullcontext()

    def lock_schema(self, connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})

    @contextmanager
    def driver_write(self, connection: Any) -> Iterator[Any]:
        """Autocommit: `insert_jobs` is one statement, atomic on its own, so the write costs one round trip
        instead of three (BEGIN, the statement, COMMIT) and is as durable as any commit."""
        connection.autocommit = True
        try:
            yield connection.cursor()
        finally:
            if not connection.broken:
                connection.autocommit = False

    def same_database(self, url: URL) -> bool:
        def where(u: URL) -> tuple[str, int, str | None]:
            return (u.host or "localhost", u.port or 5432, u.database)

        return url.get_backend_name() in ("postgresql", "postgres") and where(url) == where(self.url)

    def join_write(self, cursor: Any) -> None:
        """Nothing to take: ids come from a sequence and rows are locked one by one."""

    def insert_jobs(self, cursor: Any, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """One statement, one round trip, whatever the number of rows: each column travels as one array that
        `unnest` turns back into rows (a VALUES list would cost a parse of thousands of placeholders), and the
        NOTIFY rides along. The ids come from the sequence in the order of the ordered SELECT, so sorted
        they follow `jobs`. A single job travels as plain parameters: dumping six arrays of one cost a quarter of
        an enqueue's time here."""
        if any(job.keys for job in jobs):
            return self._insert_full(cursor, jobs, now)
        if len(jobs) == 1:
            [job], stamp = jobs, naive_utc(now)
            cursor.execute(_INSERT_ONE, (job.type, job.payload, job.queue, job.priority, job.max_retries,
                                         naive_utc(job.run_at), stamp, stamp, _due_notice(jobs)))
            return [cursor.fetchone()[0]]
        cursor.execute(_INSERT, self._arrays(jobs, now, _COLUMNS))
        return sorted(row[0] for row in cursor.fetchall())

    def _insert_full(self, cursor: Any, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """`insert_jobs` where some jobs have unique keys or limits, in a transaction of its own (a savepoint in an
        application's). A skipped job gets the id of the job holding its key; should that one have finished in
        between, the skipped ones are inserted again."""
        ids: list[int | None] = [None] * len(jobs)
        created = [False] * len(jobs)
        with cursor.connection.transaction():
            for _ in range(_UNIQUE_ATTEMPTS):
                todo = [position for position, job_id in enumerate(ids) if job_id is None]
                if not todo:
                    break
                batch = [jobs[position] for position in todo]
                cursor.execute(_INSERT_FULL, self._arrays(batch, now, _COLUMNS + _OPTIONAL_COLUMNS))
                returned = sorted(cursor.fetchall())
                for position, job in zip(todo, batch, strict=True):
                    # Skipped rows are the only gaps: a row that is next in id order with this job's key is this job.
                    key = (job.keys or NO_KEYS).unique_key
                    if returned and (key is None or tuple(returned[0][1:]) == (job.type, key)):
                        ids[position], created[position] = returned.pop(0)[0], True
                for position in todo:
                    if ids[position] is None:
                        cursor.execute(_HOLDER, holder_params(jobs[position]))
                        ids[position] = next(iter(cursor.fetchone() or ()), None)
            found = [job_id for job_id in ids if job_id is not None]
            if len(found) < len(jobs):
                raise JobQueueError(f"unique jobs kept conflicting with jobs that finished meanwhile, "
                                   f"{_UNIQUE_ATTEMPTS} times over: enqueue again")
            refuse_duplicates(jobs, found, created)
        return found

    @staticmethod
    def _arrays(jobs: Sequence[NewJob], now: datetime, columns: list[tuple[str, str]]) -> dict[str, Any]:
        arrays: dict[str, Any] = {"now": naive_utc(now), "due": _due_notice(jobs)}
        for name, _ in columns:
            if name == "run_at":
                arrays[name] = [naive_utc(job.run_at) for job in jobs]
            elif name in JobKeys.COLUMNS:
                arrays[name] = [getattr(job.keys or NO_KEYS, name) for job in jobs]
            else:
                arrays[name] = [getattr(job, name) for job in jobs]
        return arrays

    def announce(self, connection: Connection, channel: Channel) -> None:
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel.value})

    def create_functions(self, connection: Connection) -> None:
        connection.execute(text(_LIMIT_FUNCTIONS))

    def minute(self, at: ColumnElement[datetime]) -> ColumnElement[str]:
        return func.to_char(at, 'YYYY-MM-DD"T"HH24:MI')  # stored naive UTC: no time zone is applied

    def window_start(self, now: ColumnElement[datetime], seconds: ColumnElement[float]) -> ColumnElement[datetime]:
        return now - seconds * literal_column("interval '1 second'")

    def running_free(self, key: ColumnElement[str], most: ColumnElement[int],
                     claiming: ColumnElement[int]) -> ColumnElement[int]:
        """A function: it takes a lock on the key that concurrent claims of that key cannot get (they see 0 free
        and leave its jobs for later), then counts with a snapshot of its own, taken after the lock, so that it
        sees every claim of the key committed before (the claim's own snapshot, older, may not)."""
        return func.jobqueue_running_free(key, most, select(func.array_agg(claiming)).scalar_subquery())

    def starts_free(self, key: ColumnElement[str], most: ColumnElement[int], since: ColumnElement[datetime],
                    claiming: ColumnElement[int]) -> ColumnElement[int]:
        return func.jobqueue_starts_free(key, most, since, select(func.array_agg(claiming)).scalar_subquery())

    def server_time(self, engine: Engine, machine: Clock) -> TimeReading:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")  # connect, check, BEGIN: before the round trip that is timed
            sent = machine.now()
            server = connection.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
            return TimeReading(sent, server, machine.now())

    def relieve(self, engine: Engine, error: DBAPIError) -> None:
        """Nothing to do here: the server recovers by itself."""

    def is_transient(self, error: DBAPIError) -> bool:
        sqlstate = getattr(error.orig, "sqlstate", None)
        if sqlstate is None:
            return not any(words in str(error.orig) for words in _PERMANENT_CONNECT_ERRORS)
        return str(sqlstate).startswith(_TRANSIENT_SQLSTATES)

    async def listen(self, channel: Channel, wake: Callable[[datetime | None], None]) -> None:
        log = get_logger()
        if self.transaction_pooler:
            log.info("listen_disabled", reason="JOBQUEUE_TRANSACTION_POOLER: LISTEN does not work through a pooler in "
                     "transaction mode", note="new jobs from other processes are found by polling every "
                     "JOBQUEUE_POLL_INTERVAL (shorten it for a quicker pickup)")
            return
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {channel.value}")
                    if failures:
                        log.info("listen_connection_restored", after_failures=failures)
                    failures = 0
                    wake(None)  # catch up: jobs may have arrived while we were not listening
                    async for notice in connection.notifies():
                        wake(_due(notice.payload))
            except psycopg.OperationalError as exc:
                failures += 1
                delay = outage_delay(_FIRST_RECONNECT_DELAY, failures)
                log.warning("listen_connection_lost", error=" ".join(str(exc).split()), failures=failures,
                            retry_in=round(delay, 2), note="new jobs are found by polling meanwhile")
                await anyio.sleep(delay)


def _due_notice(jobs: Sequence[NewJob]) -> str:
    """The payload of the NOTIFY that announces `jobs`: when the earliest is due, in seconds since the epoch."""
    return f"{min(job.run_at for job in jobs).timestamp():.6f}"


def _due(payload: str) -> datetime | None:
    """When the jobs a NOTIFY announces are due (None: now, as the other announcements say with no payload, and
    as anything else sent on the channel is taken: a wake-up, never an error in the listener)."""
    try:
        return datetime.fromtimestamp(float(payload), UTC)
    except (ValueError, OverflowError, OSError):
        return None


# SQLSTATE classes and codes that may clear up by themselves: connection exceptions, insufficient resources
# (disk full, too many connections), a server shutting down or starting, a statement or lock timeout,
# serialization failures and deadlocks.
_TRANSIENT_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "57014", "55P03", "40")
# Errors raised while connecting carry no SQLSTATE: these messages mean waiting will not help.
_PERMANENT_CONNECT_ERRORS = ("authentication failed", "does not exist", "invalid", "no pg_hba.conf entry",
                             "permission denied", "password")


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling, only where it pays: a connection that rested in the pool (a server
    restart happens while connections rest) is pinged before use; one in constant use is not, which saves a
    round trip per transaction on the hot path. A dead connection is replaced (SQLAlchemy retries the
    checkout); a server lost mid-use surfaces as an error the worker waits out."""
    if time.monotonic() - record.info.get("last_use", 0.0) < PING_AFTER_IDLE:
        return
    try:
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.rollback()  # end the transaction the driver opened for the ping
    except psycopg.Error as exc:
        raise DisconnectionError(str(exc)) from exc


def _note_last_use(_dbapi_connection: Any, record: Any) -> None:
    record.info["last_use"] = time.monotonic()
