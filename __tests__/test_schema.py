"""Tables are created idempotently, the schema version is recorded, a newer database is refused."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text, update
from sqlmodel import select

from main.db.engine import Database
from main.db.entities import SchemaVersion
from main.db.schema import SCHEMA_VERSION, ensure_schema
from main.db.store import JobStore, NewJob
from main.errors import SchemaVersionError


def test_create_twice_and_record_version(database_url: str) -> None:
    database = Database(database_url)
    ensure_schema(database)
    ensure_schema(database)
    with database.transaction() as session:
        versions = session.exec(select(SchemaVersion)).all()
    assert [row.version for row in versions] == [SCHEMA_VERSION]
    indexes = {index["name"] for index in inspect(database.engine).get_indexes("jobs")}
    assert {"ix_jobs_claim", "ix_jobs_due", "ix_jobs_lease", "ix_jobs_finished"} <= indexes
    database.dispose()


def test_a_version_1_database_is_migrated_and_keeps_its_jobs(database_url: str) -> None:
    database = Database(database_url)
    ensure_schema(database)
    with database.transaction() as session:  # what v1 had: no ix_jobs_due
        session.execute(text("DROP INDEX ix_jobs_due"))
        session.execute(update(SchemaVersion).values(version=1))
    JobStore(database).enqueue([NewJob("NoopJob", {"n": 1}, "default", 0, 3, datetime.now(UTC))], datetime.now(UTC))
    ensure_schema(database)
    assert "ix_jobs_due" in {index["name"] for index in inspect(database.engine).get_indexes("jobs")}
    with database.transaction() as session:
        assert session.exec(select(SchemaVersion)).one().version == SCHEMA_VERSION
    assert JobStore(database).get(1).payload == {"n": 1}
    database.dispose()


def test_newer_database_is_refused(database_url: str) -> None:
    database = Database(database_url)
    ensure_schema(database)
    with database.transaction() as session:
        session.execute(update(SchemaVersion).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(SchemaVersionError, match=f"schema v{SCHEMA_VERSION + 1}, newer than this jobqueue"):
        ensure_schema(database)
    database.dispose()
