"""Create the tables idempotently and record the schema version, so later releases can migrate.

The tables themselves are defined once, in main/db/entities/. A change to them bumps SCHEMA_VERSION and
adds a step to MIGRATIONS that brings a database from the previous version to this one.
"""

from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy import inspect as sa_inspect
from sqlmodel import SQLModel, select

from main.db import entities
from main.db.engine import Database
from main.errors import SchemaVersionError

SCHEMA_VERSION = 4


def _add_due_index(connection: Connection) -> None:
    """v2: the claim over all queues reads pending jobs in claim order from an index instead of sorting them."""
    connection.execute(text("CREATE INDEX IF NOT EXISTS ix_jobs_due ON jobs (status, priority DESC, run_at, id)"))


def _partial_indexes(connection: Connection) -> None:
    """v3: partial indexes, one per state a query looks for; a job's claim and outcome no longer rewrite an
    entry in each of four indexes that start with `status`."""
    for old in ("ix_jobs_claim", "ix_jobs_due", "ix_jobs_lease", "ix_jobs_finished"):
        connection.execute(text(f"DROP INDEX IF EXISTS {old}"))
    for index in entities.Job.__table__.indexes:  # type: ignore[attr-defined]
        index.create(connection, checkfirst=True)


# version reached -> the step that reaches it from the version before
def _workers_table(connection: Connection) -> None:
    """v4: the workers table (`jobqueue workers`)."""
    entities.WorkerRow.__table__.create(connection, checkfirst=True)  # type: ignore[attr-defined]
    for index in entities.WorkerRow.__table__.indexes:  # type: ignore[attr-defined]
        index.create(connection, checkfirst=True)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _add_due_index, 3: _partial_indexes, 4: _workers_table}

_TABLES = [entities.Job.__table__, entities.SchemaVersion.__table__, entities.WorkerRow.__table__]


def ensure_schema(database: Database) -> None:
    """Create missing tables, refuse a database from the future, run pending migrations. Safe to race. A
    database already at this version is only read: no write lock, so this never waits behind a writer (an
    application's transaction that enqueues a job in it, on SQLite)."""
    if _stored_version(database) == SCHEMA_VERSION:
        return
    with database.transaction() as session:
        connection = session.connection()
        database.dialect.lock_schema(connection)
        SQLModel.metadata.create_all(connection, tables=_TABLES)
        row = session.exec(select(entities.SchemaVersion)).first()
        if row is None:
            session.add(entities.SchemaVersion(version=SCHEMA_VERSION))
            return
        if row.version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the database at {database.engine.url.render_as_string()} has jobqueue schema v{row.version}, "
                f"newer than this jobqueue (v{SCHEMA_VERSION}); upgrade jobqueue before running it here"
            )
        for version in range(row.version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](connection)
        row.version = SCHEMA_VERSION


def _stored_version(database: Database) -> int | None:
    with database.read() as session:
        if not sa_inspect(session.connection()).has_table(entities.SchemaVersion.__tablename__):
            return None
        row = session.exec(select(entities.SchemaVersion)).first()
        return None if row is None else row.version
