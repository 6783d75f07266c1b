"""Settings: JOBQUEUE_* variables, durations, and bad values named in the error."""

import pytest

from main.errors import SettingsError
from main.settings import Settings, parse_duration


def test_defaults() -> None:
    settings = Settings.load()
    assert settings.database_url == "sqlite:///jobqueue.db"
    assert settings.poll_interval == 5.0
    assert settings.concurrency == 5
    assert settings.cleanup_interval == 600.0
    assert settings.jobs_module == "main.jobs"
    assert settings.queues == ()


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQUEUE_POLL_INTERVAL", "250ms")
    monkeypatch.setenv("JOBQUEUE_CONCURRENCY", "12")
    monkeypatch.setenv("JOBQUEUE_RETENTION", "7d")
    monkeypatch.setenv("JOBQUEUE_QUEUES", "emails, reports")
    monkeypatch.setenv("JOBQUEUE_LOG_FORMAT", "json")
    monkeypatch.setenv("JOBQUEUE_JOBS_MODULE", "myapp.jobs")
    settings = Settings.load()
    assert settings.poll_interval == 0.25
    assert settings.concurrency == 12
    assert settings.retention == 7 * 86400
    assert settings.queues == ("emails", "reports")
    assert settings.log_format == "json"
    assert settings.jobs_module == "myapp.jobs"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOBQUEUE_POLL_INTERVAL", "soon"),
        ("JOBQUEUE_POLL_INTERVAL", "0"),
        ("JOBQUEUE_CONCURRENCY", "0"),
        ("JOBQUEUE_CONCURRENCY", "many"),
        ("JOBQUEUE_LEASE_SECONDS", "-3"),
        ("JOBQUEUE_SHUTDOWN_TIMEOUT", "x"),
        ("JOBQUEUE_RETENTION", "1 week"),
        ("JOBQUEUE_LOG_FORMAT", "xml"),
        ("JOBQUEUE_DATABASE_URL", "jobs.db"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        Settings.load()


def test_unsupported_database_is_named() -> None:
    from main.db.dialects import dialect_for

    with pytest.raises(SettingsError, match="JOBQUEUE_DATABASE_URL: unsupported database 'mysql'"):
        dialect_for("mysql://localhost/jobs")


@pytest.mark.parametrize(("text", "seconds"), [("5", 5), ("0.05", 0.05), ("250ms", 0.25), ("2m", 120), ("1h", 3600)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"])
def test_every_postgresql_url_form_users_write_is_accepted(postgres_url: str, scheme: str) -> None:
    """Before: postgres://, the form most platforms hand out, was refused as an unsupported database."""
    from __tests__.support.jobs import JOBS, NoopJob
    from main.services.job_queue import JobQueue, set_job_queue

    url = scheme + postgres_url[postgres_url.index("://"):]
    queue = set_job_queue(JobQueue(Settings.load(database_url=url, pool_size=3), jobs=JOBS))
    try:
        job_id = NoopJob.perform_later_sync({"n": 1})
        assert queue.store.get(job_id).payload == {"n": 1}
        assert (queue.database.dialect.name, queue.database.engine.pool.size()) == ("postgresql", 3)
    finally:
        queue.close()


def test_the_pool_size_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from main.db.engine import Database

    monkeypatch.setenv("JOBQUEUE_POOL_SIZE", "7")
    settings = Settings.load(database_url=f"sqlite:///{tmp_path / 'jobs.db'}")
    assert Database(settings.database_url, settings.pool_size).engine.pool.size() == 7
    monkeypatch.setenv("JOBQUEUE_POOL_SIZE", "0")
    with pytest.raises(SettingsError, match="JOBQUEUE_POOL_SIZE"):
        Settings.load()


def test_a_transaction_pooler_is_for_postgresql_only(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("JOBQUEUE_TRANSACTION_POOLER", "true")
    with pytest.raises(SettingsError, match="JOBQUEUE_TRANSACTION_POOLER is for PostgreSQL .* SQLite is a file"):
        Settings.load(database_url=f"sqlite:///{tmp_path / 'jobs.db'}")
    assert Settings.load(database_url="postgresql://db.internal/app").transaction_pooler is True
    monkeypatch.setenv("JOBQUEUE_TRANSACTION_POOLER", "sometimes")
    with pytest.raises(SettingsError, match="JOBQUEUE_TRANSACTION_POOLER"):
        Settings.load(database_url="postgresql://db.internal/app")
