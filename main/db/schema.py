"""The jobqueue tables' schema, migrated by Alembic (main/db/migrations/) in a version table of its own
(`jobqueue_alembic_version`), beside whatever Alembic history the application keeps for its own tables.

A fresh database gets the tables on first use (the README's first command needs no set-up). A database whose
tables are older than this jobqueue is refused with what to run (`jobqueue db upgrade`): migrating is a deploy
step, not something every worker does on its own at start-up. Databases of the releases before Alembic kept
their version in `jobqueue_schema`; `jobqueue db upgrade` carries them over (their version N is revision N).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from main.db import entities
from main.db.engine import Database
from main.errors import SchemaMigrationNeededError, SchemaVersionError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The revision this code works with: read at every start-up without loading Alembic (a tenth of a second per
# process); a test checks that it is the head of main/db/migrations/versions/.
HEAD = "0011"
VERSION_TABLE = "jobqueue_alembic_version"
_LEGACY_TABLE = "jobqueue_schema"  # releases before Alembic: one row, the schema version
_MODEL_TABLES = [entities.Job.__table__, entities.WorkerRow.__table__, entities.QueueRow.__table__,  # type: ignore[attr-defined]
                 entities.ScheduleRow.__table__, entities.WorkflowRun.__table__,  # type: ignore[attr-defined]
                 entities.WorkflowEdge.__table__, entities.BatchRow.__table__]  # type: ignore[attr-defined]


def model_table(name: str | None) -> bool:
    """Whether a table is one of jobqueue's models (jobs, jobqueue_workers)."""
    return any(table.name == name for table in _MODEL_TABLES)


def jobqueue_table(name: str | None) -> bool:
    """Whether a table is jobqueue's, its version table included: for an application's Alembic `include_name`,
    to leave them out of its autogenerate (docs/SCALING.md)."""
    return model_table(name) or name == VERSION_TABLE


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None: none of the jobqueue tables), and, for a database of the
    releases before Alembic, its legacy version."""

    revision: str | None
    legacy_version: int | None = None

    @property
    def fresh(self) -> bool:
        return self.revision is None and self.legacy_version is None


def head() -> str:
    """The revision this jobqueue's code expects."""
    return HEAD


def state(connection: Connection) -> SchemaState:
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables:
        found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(found) > 1:
            raise SchemaVersionError(f"the jobqueue tables are at several revisions at once ({', '.join(found)}): "
                                     "a branched history this jobqueue did not write")
        return SchemaState(found[0] if found else None)
    if _LEGACY_TABLE in tables:
        version = connection.execute(text(f"SELECT version FROM {_LEGACY_TABLE}")).scalar_one_or_none()
        return SchemaState(None, version if version is not None else 1)
    if "jobs" in tables:
        raise SchemaVersionError(
            "the database has a table named `jobs` that jobqueue did not create (no jobqueue version table): point "
            "JOBQUEUE_DATABASE_URL at a database (or PostgreSQL schema) of its own"
        )
    return SchemaState(None)


def ensure_schema(database: Database) -> None:
    """At start-up of anything that uses the queue: a database at this jobqueue's revision is only read (no write
    lock, so this never waits behind a writer); a fresh one gets the tables; an older one is refused with what
    to run; a newer one with what to upgrade. Safe to race: the schema lock serialises the creators, and the
    first opening of a fresh SQLite file by several processes at once, where SQLite may answer "database is
    locked" without waiting (to avoid a deadlock), is tried again."""
    for attempt in Retrying(retry=retry_if_exception(lambda exc: isinstance(exc, DBAPIError)
                                                     and database.dialect.is_transient(exc)),
                            wait=wait_exponential(multiplier=0.05, max=0.5), stop=stop_after_attempt(5), reraise=True):
        with attempt:
            _ensure_schema(database)


def _ensure_schema(database: Database) -> None:
    with database.read() as session:
        if state(session.connection()).revision == head():
            return
    with _locked(database) as connection:
        found = state(connection)
        if found.fresh:  # Alembic's recipe: the tables as the models define them, stamped with the head revision
            SQLModel.metadata.create_all(connection, tables=_MODEL_TABLES)
            database.dialect.create_functions(connection)
            _alembic(connection, "stamp", head())
        elif found.revision != head():
            raise _mismatch(database, found)


def upgrade(database: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the jobqueue tables to `revision` (a database of the releases before Alembic first takes the
    revision of its version). Returns (revision before, revision after)."""
    with _locked(database) as connection:
        found = state(connection)
        before = found.revision
        if found.legacy_version is not None:
            before = _adopt_legacy(connection, found.legacy_version)
        _check_known(database, before)
        _alembic(connection, "upgrade", revision)
        return before, state(connection).revision


def downgrade(database: Database, revision: str) -> tuple[str | None, str | None]:
    """Migrate the jobqueue tables back to `revision` ("base" drops them, with every job)."""
    with _locked(database) as connection:
        before = state(connection).revision
        _check_known(database, before)
        _alembic(connection, "downgrade", revision)
        return before, state(connection).revision


def current(database: Database) -> SchemaState:
    with database.read() as session:
        return state(session.connection())


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


@contextmanager
def _locked(database: Database) -> Iterator[Connection]:
    with database.transaction() as session:
        connection = session.connection()
        database.dialect.lock_schema(connection)
        yield connection


def _alembic(connection: Connection, verb: str, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    config = _config()
    config.attributes["connection"] = connection
    try:
        getattr(command, verb)(config, revision)
    except CommandError as exc:  # an unknown revision, a downgrade target above the current one...
        raise SchemaVersionError(
            f"cannot {verb} the jobqueue tables to {revision!r}: {exc} (revisions: {', '.join(revisions())}, "
            "head, base)"
        ) from None


def _adopt_legacy(connection: Connection, version: int) -> str:
    """A database of the releases before Alembic: its version N is revision 000N."""
    revision = f"{version:04d}"
    if revision not in revisions():
        raise SchemaVersionError(f"the jobqueue tables are at legacy version {version}, which this jobqueue does "
                                 "not know; upgrade jobqueue")
    _alembic(connection, "stamp", revision)
    connection.execute(text(f"DROP TABLE {_LEGACY_TABLE}"))
    return revision


def _check_known(database: Database, revision: str | None) -> None:
    if revision is not None and revision not in revisions():
        raise _mismatch(database, SchemaState(revision))


def _mismatch(database: Database, found: SchemaState) -> Exception:
    where = database.engine.url.render_as_string()
    if found.revision is not None and found.revision not in revisions():
        return SchemaVersionError(
            f"the jobqueue tables at {where} are at revision {found.revision}, newer than this jobqueue "
            f"({head()}); upgrade jobqueue before running it here"
        )
    at = f"revision {found.revision}" if found.revision else f"legacy version {found.legacy_version}"
    return SchemaMigrationNeededError(
        f"the jobqueue tables at {where} are at {at}, older than this jobqueue ({head()}): run `jobqueue db "
        "upgrade` (with the same JOBQUEUE_DATABASE_URL), then start again"
    )


def _config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "main.db:migrations")
    return config


@cache
def _scripts() -> "ScriptDirectory":
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())
