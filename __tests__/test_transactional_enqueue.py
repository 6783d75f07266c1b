"""Enqueue in the application's transaction (`session=`): the job exists if and only if the application's data
commits, and workers elsewhere hear of it (NOTIFY, the WAL file) only then."""

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from __tests__.support.jobs import NoopJob
from main.base.jobs import JobRequest
from main.db.entities import JobStatus
from main.errors import JobRequestError
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


@pytest.fixture
def app_engine(queue: JobQueue, database_url: str):
    """The application's own engine on the queue's database, with a table of its own."""
    queue.store.ensure_schema()
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, item VARCHAR(50))"))
    yield engine
    engine.dispose()


def jobs_of(queue: JobQueue) -> list[int]:
    return [job.id for job in queue.store.list_jobs(limit=100)]


def orders(engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT item FROM orders ORDER BY id")))


async def test_a_job_enqueued_in_a_committed_session_exists_and_runs(queue: JobQueue, app_engine) -> None:
    with Session(app_engine) as session, session.begin():
        session.execute(text("INSERT INTO orders (id, item) VALUES (1, 'book')"))
        job_id = await NoopJob.perform_later({"n": 1}, session=session)
        assert jobs_of(queue) == []  # not visible before the commit
    assert orders(app_engine) == ["book"] and jobs_of(queue) == [job_id]
    await queue.run(burst=True)
    assert queue.store.get(job_id).status == JobStatus.COMPLETED


def test_a_rolled_back_session_leaves_neither_the_data_nor_the_job(queue: JobQueue, app_engine) -> None:
    with pytest.raises(RuntimeError), Session(app_engine) as session, session.begin():
        session.execute(text("INSERT INTO orders (id, item) VALUES (1, 'book')"))
        NoopJob.perform_bulk_sync([{"n": 1}, {"n": 2}], session=session)
        raise RuntimeError("the application changes its mind")
    assert orders(app_engine) == [] and jobs_of(queue) == []
    later = NoopJob.perform_later_sync({"n": 3})
    assert jobs_of(queue) == [later]  # the queue goes on as before


def test_a_connection_works_like_a_session(queue: JobQueue, app_engine) -> None:
    with app_engine.begin() as connection:
        connection.execute(text("INSERT INTO orders (id, item) VALUES (1, 'pen')"))
        [job_id] = queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})], session=connection)
    assert orders(app_engine) == ["pen"] and jobs_of(queue) == [job_id]


def test_a_session_on_another_database_is_refused(queue: JobQueue, tmp_path) -> None:
    other = create_engine(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with Session(other) as session, pytest.raises(JobRequestError, match="not to the queue's database"):
        queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})], session=session)
    with pytest.raises(JobRequestError, match="session must be a SQLAlchemy Session, Connection, AsyncSession or"):
        queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})], session="not a session")  # type: ignore[arg-type]
    assert jobs_of(queue) == []


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_notify_fires_on_commit_only(queue: JobQueue, app_engine, database_url: str) -> None:
    import psycopg

    from main.db.dialects import Channel

    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {Channel.NEW_JOBS.value}")
        with pytest.raises(RuntimeError), Session(app_engine) as session, session.begin():
            queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})], session=session)
            raise RuntimeError("rolled back")
        assert list(listener.notifies(timeout=0.5)) == []
        with Session(app_engine) as session, session.begin():
            queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 2})], session=session)
            assert list(listener.notifies(timeout=0.3)) == []  # not before the commit
        assert [note.channel for note in listener.notifies(timeout=2, stop_after=1)] == [Channel.NEW_JOBS.value]


@pytest.fixture
async def async_app_engine(app_engine, database_url: str):
    """The application's engine as an async one (aiosqlite, psycopg's async mode) on the queue's database."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(make_url(database_url).set(
        drivername="sqlite+aiosqlite" if database_url.startswith("sqlite") else "postgresql+psycopg"))
    yield engine
    await engine.dispose()


async def test_an_async_session_commits_or_rolls_back_its_jobs_with_its_data(
    queue: JobQueue, app_engine, async_app_engine,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    with pytest.raises(RuntimeError):
        async with AsyncSession(async_app_engine) as session, session.begin():
            await session.execute(text("INSERT INTO orders (id, item) VALUES (1, 'book')"))
            await NoopJob.perform_bulk([{"n": 1}, {"n": 2}], session=session)
            raise RuntimeError("the application changes its mind")
    assert orders(app_engine) == [] and jobs_of(queue) == []
    async with AsyncSession(async_app_engine) as session, session.begin():
        await session.execute(text("INSERT INTO orders (id, item) VALUES (2, 'pen')"))
        job_id = await NoopJob.perform_later({"n": 3}, session=session)
    assert orders(app_engine) == ["pen"] and jobs_of(queue) == [job_id]
    async with async_app_engine.begin() as connection:  # an AsyncConnection works too
        [other] = await queue.enqueue_many([JobRequest(NoopJob, {"n": 4})], session=connection)
    await queue.run(burst=True)
    assert [queue.store.get(i).status for i in (job_id, other)] == [JobStatus.COMPLETED] * 2


async def test_an_async_session_is_refused_by_the_sync_methods_with_what_to_do(
    queue: JobQueue, async_app_engine,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(async_app_engine) as session:
        with pytest.raises(JobRequestError, match=r"needs the async enqueue \(await Job.perform_later"):
            queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})], session=session)
    assert jobs_of(queue) == []


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_session_through_a_driver_that_cannot_run_the_insert_is_refused(queue: JobQueue, database_url: str) -> None:
    """Before: pg8000 (or asyncpg) got the insert written for psycopg and failed with a syntax error."""
    engine = create_engine(make_url(database_url).set(drivername="postgresql+pg8000"))
    try:
        with engine.begin() as connection, pytest.raises(JobRequestError, match="driver \\(pg8000\\) cannot run"):
            queue.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})], session=connection)
    finally:
        engine.dispose()
    assert jobs_of(queue) == []


def test_jobqueue_works_without_greenlet(tmp_path) -> None:
    """Before: job_queue.py imported SQLAlchemy's asyncio module, which fails without greenlet, so jobqueue did
    not import at all for applications that do not use asyncio sessions (the benchmark's venv caught it)."""
    import subprocess
    import sys

    from __tests__.conftest import ROOT

    program = (
        "import sys; sys.modules['greenlet'] = None\n"  # as if it were not installed
        "from main.services.job_queue import JobQueue\n"
        "from main.settings import Settings\n"
        "from __tests__.support.jobs import JOBS, NoopJob\n"
        "from main.services.job_queue import set_job_queue\n"
        f"queue = set_job_queue(JobQueue(Settings.load(database_url='sqlite:///{tmp_path / 'jobs.db'}'), jobs=JOBS))\n"
        "print(NoopJob.perform_later_sync({'n': 1}))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "1", result.stderr[-2000:]
