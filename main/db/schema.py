"""Create the tables idempotently and record the schema version, so later releases can migrate.

The tables themselves are defined once, in main/db/entities/. A change to them bumps SCHEMA_VERSION and
adds a step to MIGRATIONS that brings a database from the previous version to this one.
"""

from collections.abc import Callable

from sqlalchemy import Connection
from sqlmodel import SQLModel, select

from main.db import entities
from main.db.engine import Database
from main.errors import SchemaVersionError

SCHEMA_VERSION = 2


def _add_due_index(connection: Connection) -> None:
    """v2: the claim over all queues reads pending jobs in claim order from an index instead of sorting them."""
    index = next(index for index in entities.Job.__table__.indexes if index.name == "ix_jobs_due")  # type: ignore[attr-defined]
    index.create(connection, checkfirst=True)


# version reached -> the step that reaches it from the version before
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _add_due_index}

_TABLES = [entities.Job.__table__, entities.SchemaVersion.__table__]


def ensure_schema(database: Database) -> None:
    """Create missing tables, refuse a database from the future, run pending migrations. Safe to race."""
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
