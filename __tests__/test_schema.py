"""Tables are created idempotently, the schema version is recorded, a newer database is refused."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text, update
from sqlmodel import select

from main.db.engine import Database
from main.db.entities import SchemaVersion
from main.db.rows import NewJob
from main.db.schema import SCHEMA_VERSION, ensure_schema
from main.db.store import JobStore
from main.errors import SchemaVersionError


def test_create_twice_and_record_version(database_url: str) -> None:
    database = Database(database_url)
    ensure_schema(database)
    ensure_schema(database)
    with database.transaction() as session:
        versions = session.exec(select(SchemaVersion)).all()
    assert [row.version for row in versions] == [SCHEMA_VERSION]
    indexes = {index["name"] for index in inspect(database.engine).get_indexes("jobs")}
    assert {"ix_jobs_pending", "ix_jobs_pending_queue", "ix_jobs_running_lease", "ix_jobs_finished_at"} <= indexes
    database.dispose()


_V1_INDEXES = {
    "ix_jobs_claim": "status, queue, priority, run_at",
    "ix_jobs_lease": "status, lease_expires_at",
    "ix_jobs_finished": "status, finished_at",
}


def test_a_version_1_database_is_migrated_and_keeps_its_jobs(database_url: str) -> None:
    database = Database(database_url)
    ensure_schema(database)
    with database.transaction() as session:  # the indexes v1 had, instead of today's
        for index in ("ix_jobs_pending", "ix_jobs_pending_queue", "ix_jobs_running_lease", "ix_jobs_finished_at"):
            session.execute(text(f"DROP INDEX {index}"))
        for name, columns in _V1_INDEXES.items():
            session.execute(text(f"CREATE INDEX {name} ON jobs ({columns})"))
        session.execute(update(SchemaVersion).values(version=1))
    JobStore(database).enqueue([NewJob("NoopJob", '{"n": 1}', "default", 0, 3, datetime.now(UTC))], datetime.now(UTC))
    ensure_schema(database)
    indexes = {index["name"] for index in inspect(database.engine).get_indexes("jobs")}
    assert indexes == {"ix_jobs_pending", "ix_jobs_pending_queue", "ix_jobs_running_lease", "ix_jobs_finished_at"}
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
