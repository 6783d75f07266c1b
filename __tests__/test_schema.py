"""The jobqueue tables' schema under Alembic, on both engines: a fresh database gets the tables on first use; the
migrations from empty build exactly what the models define; upgrades and downgrades between revisions keep the
jobs; an older database is refused with what to run, a newer one with what to upgrade; databases of the releases
before Alembic (`jobqueue_schema`) are carried over."""

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from main.db import schema
from main.db.engine import Database
from main.db.rows import NewJob
from main.db.store import JobStore
from main.errors import SchemaMigrationNeededError, SchemaVersionError


@pytest.fixture
def database(database_url: str):
    database = Database(database_url)
    yield database
    database.dispose()


def enqueue_one(database: Database) -> int:
    now = datetime.now(UTC)
    [job_id] = JobStore(database).enqueue([NewJob("NoopJob", '{"n": 1}', "default", 0, 3, now)], now)
    return job_id


def jobs_columns(database: Database) -> set[str]:
    return {column["name"] for column in inspect(database.engine).get_columns("jobs")}


def jobs_indexes(database: Database) -> set[str | None]:
    return {index["name"] for index in inspect(database.engine).get_indexes("jobs")}


def tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names())


def shape(engine: Engine) -> dict[str, Any]:
    """The jobqueue tables as the database reports them: columns and indexes."""
    found = inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
            sorted((i["name"], i["column_names"], i.get("expressions"),
                    {key: str(value) for key, value in i.get("dialect_options", {}).items()})
                   for i in found.get_indexes(table)),
        )
        for table in ("jobs", "jobqueue_workers", "jobqueue_queues")
    }


def sqlite_ddl(database: Database) -> dict[str, str]:
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE name LIKE '%jobs%' OR name LIKE "
                                       "'%workers%'"))
        return {name: " ".join(sql.split()) for name, sql in rows if sql}


def test_the_revision_the_code_expects_is_the_head_of_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    assert schema.head() == ScriptDirectory.from_config(schema._config()).get_current_head() == schema.revisions()[-1]


def test_a_fresh_database_gets_the_tables_once_at_the_head_revision(database: Database) -> None:
    assert schema.current(database).fresh
    schema.ensure_schema(database)
    schema.ensure_schema(database)
    assert schema.current(database).revision == schema.head()
    assert {"jobs", "jobqueue_workers", "jobqueue_queues", "jobqueue_alembic_version"} <= tables(database)


def test_the_migrations_from_empty_build_what_the_models_define(
    database: Database, database_url: str, tmp_path: Path,
) -> None:
    schema.upgrade(database)  # every revision from base
    migrated = shape(database.engine)
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "version_table": schema.VERSION_TABLE, "compare_type": True,
            "include_object": lambda _o, name, kind, _r, _c: kind != "table" or schema.model_table(name)})
        differences = compare_metadata(context, SQLModel.metadata)
    if database_url.startswith("postgresql"):
        assert differences == []
    else:  # SQLite's reflection cannot see an index column's DESC: compare with the models' tables as created
        created = Database(f"sqlite:///{tmp_path / 'created.db'}")
        schema.ensure_schema(created)  # a fresh database: the models' create_all, stamped
        assert shape(created.engine) == migrated
        assert sqlite_ddl(created) == sqlite_ddl(database)  # and the indexes' DESC, which reflection misses
        created.dispose()


def test_upgrading_from_the_previous_revision_keeps_the_jobs(database: Database) -> None:
    previous = schema.revisions()[-2]
    schema.upgrade(database, previous)
    job_id = enqueue_one_raw(database)
    with pytest.raises(SchemaMigrationNeededError, match="older than this jobqueue .*: run `jobqueue db upgrade`"):
        schema.ensure_schema(database)
    assert schema.upgrade(database) == (previous, schema.head())
    schema.ensure_schema(database)
    assert JobStore(database).get(job_id).payload == {"n": 1}
    assert "concurrency_key" in jobs_columns(database)  # what the head revision added


def test_downgrading_one_revision_and_back_keeps_the_jobs(database: Database) -> None:
    schema.ensure_schema(database)
    job_id = enqueue_one(database)
    previous = schema.revisions()[-2]
    assert schema.downgrade(database, previous) == (schema.head(), previous)
    assert "ix_jobs_leased" not in jobs_indexes(database)  # what the newest revision added
    schema.upgrade(database)
    assert "ix_jobs_leased" in jobs_indexes(database)
    assert JobStore(database).get(job_id).status.value == "pending"


def test_every_revision_goes_up_and_down(database: Database) -> None:
    for revision in schema.revisions():
        schema.upgrade(database, revision)
        assert schema.current(database).revision == revision
    for revision in reversed(schema.revisions()[:-1]):
        schema.downgrade(database, revision)
    schema.downgrade(database, "base")
    assert "jobs" not in tables(database)


def test_a_newer_database_is_refused(database: Database) -> None:
    schema.ensure_schema(database)
    with database.transaction() as session:
        session.execute(text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(SchemaVersionError, match="revision 9999, newer than this jobqueue"):
        schema.ensure_schema(database)
    with pytest.raises(SchemaVersionError, match="newer than this jobqueue"):
        schema.upgrade(database)


def test_an_unknown_target_revision_names_the_known_ones(database: Database) -> None:
    with pytest.raises(SchemaVersionError, match=r"to '42'.*revisions: 0001, 0002"):
        schema.upgrade(database, "42")


def make_legacy(database: Database, version: int) -> None:
    """A database as the releases before Alembic left it: the tables of `version`, the version in jobqueue_schema."""
    schema.upgrade(database, f"{version:04d}")
    with database.transaction() as session:
        session.execute(text(f"DROP TABLE {schema.VERSION_TABLE}"))
        session.execute(text("CREATE TABLE jobqueue_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)"))
        session.execute(text(f"INSERT INTO jobqueue_schema VALUES (1, {version})"))


def enqueue_one_raw(database: Database) -> int:
    """A job written with plain SQL, as an older release's tables accept it."""
    with database.transaction() as session:
        session.execute(text(
            "INSERT INTO jobs (type, payload, status, queue, priority, attempts, max_retries, run_at, created_at, "
            "updated_at, cancel_requested) VALUES ('NoopJob', '{\"n\": 1}', 'pending', 'default', 0, 0, 3, "
            "'2030-01-01 00:00:00', '2030-01-01 00:00:00', '2030-01-01 00:00:00', false)"))
        return session.execute(text("SELECT max(id) FROM jobs")).scalar_one()  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", [2, 4])  # 4: the last release before Alembic
def test_a_legacy_database_is_refused_then_carried_over_by_upgrade(database: Database, version: int) -> None:
    make_legacy(database, version)
    job_id = enqueue_one_raw(database)
    with pytest.raises(SchemaMigrationNeededError, match=f"legacy version {version}, older .*`jobqueue db upgrade`"):
        schema.ensure_schema(database)
    assert schema.upgrade(database) == (f"{version:04d}", schema.head())
    assert "jobqueue_schema" not in tables(database)
    assert JobStore(database).get(job_id).payload == {"n": 1}


def test_a_foreign_jobs_table_is_refused(database: Database) -> None:
    with database.transaction() as session:
        session.execute(text("CREATE TABLE jobs (id INTEGER PRIMARY KEY, title VARCHAR(20))"))
    with pytest.raises(SchemaVersionError, match="a table named `jobs` that jobqueue did not create"):
        schema.ensure_schema(database)


def test_connections_racing_to_create_the_tables_create_them_once(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(4)]
    errors: list[BaseException] = []

    def create(database: Database) -> None:
        try:
            schema.ensure_schema(database)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and schema.current(databases[0]).revision == schema.head()
    for database in databases:
        database.dispose()
