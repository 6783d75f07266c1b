"""PostgreSQL: the scale-out engine. Many workers on many machines share one database;
claims skip rows locked by others and LISTEN/NOTIFY wakes idle workers when jobs arrive."""

import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import anyio
import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, insert, make_url, text
from sqlalchemy.exc import DisconnectionError

from main.db.entities.job import Job
from main.log import get_logger

CHANNEL = "jobqueue_new_jobs"
PING_AFTER_IDLE = 1.0  # seconds a pooled connection may rest before it is checked on checkout

_jobs = Job.__table__  # type: ignore[attr-defined]
_INSERT_ONE = insert(_jobs).returning(_jobs.c.id)
# Every column a new job sets: its SQL array type, and its value when a row leaves it out.
_COLUMNS: list[tuple[str, str, Any]] = [
    ("type", "varchar[]", None), ("payload", "json[]", None), ("status", "varchar[]", "pending"),
    ("queue", "varchar[]", "default"), ("priority", "int[]", 0), ("attempts", "int[]", 0),
    ("max_retries", "int[]", 0), ("run_at", "timestamp[]", None), ("created_at", "timestamp[]", None),
    ("updated_at", "timestamp[]", None), ("cancel_requested", "boolean[]", False),
]
_NAMES = [name for name, _, _ in _COLUMNS]
_INSERT_UNNEST = (
    f"INSERT INTO jobs ({', '.join(_NAMES)}) "
    f"SELECT {', '.join(_NAMES)} FROM unnest({', '.join(f'CAST(:{n} AS {t})' for n, t, _ in _COLUMNS)}) "
    f"WITH ORDINALITY AS row({', '.join(_NAMES)}, position) ORDER BY position RETURNING id"
)
_SCHEMA_LOCK_KEY = 0x6A6F6271  # "jobq": an arbitrary, fixed advisory-lock key
_RECONNECT_DELAY = 1.0


class PostgresDialect:
    name = "postgresql"

    def __init__(self, database_url: str) -> None:
        # Whatever driver the URL names, we talk to PostgreSQL through psycopg 3.
        self.url = make_url(database_url).set(drivername="postgresql+psycopg")

    def create_engine(self) -> Engine:
        engine = create_engine(self.url, pool_size=10, max_overflow=20)
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

    def insert_jobs(self, connection: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        """One statement whatever the number of rows: each column travels as one array and `unnest` turns them
        back into rows (a multi-row VALUES list would cost psycopg a parse of thousands of placeholders). The
        ids come from the sequence in the order the ordered SELECT yields the rows, so sorted they follow
        `rows`."""
        if len(rows) == 1:
            return [connection.scalar(_INSERT_ONE, rows[0])]
        arrays = {name: [_to_db(name, row.get(name, default)) for row in rows] for name, _, default in _COLUMNS}
        ids = connection.scalars(text(_INSERT_UNNEST), arrays)
        return sorted(ids)

    def announce_new_jobs(self, connection: Connection) -> None:
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    async def listen_for_new_jobs(self, wake: Callable[[], None]) -> None:
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        log = get_logger()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    wake()  # jobs may have arrived while we were not listening
                    async for _ in connection.notifies():
                        wake()
            except psycopg.OperationalError as exc:
                log.warning("listen_connection_lost", error=str(exc), retry_in=_RECONNECT_DELAY)
                await anyio.sleep(_RECONNECT_DELAY)


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


def _to_db(name: str, value: Any) -> Any:
    """A value as the jobs table stores it (what its column types would do): JSON as text, aware datetimes as
    naive UTC, enum members as their value."""
    if name == "payload":
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return getattr(value, "value", value)
