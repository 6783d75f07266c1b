"""The worker engine: leases kept whatever the poll interval, sync jobs that cannot starve the database's
threads, an enqueue from inside a checkpoint write, reads beside a writer, pickup across processes without a
short poll, logs with the job's context on stderr, and the number of statements per job."""

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import psycopg
import pytest
from sqlalchemy import event

from __tests__.conftest import FAST, QueueFactory, wait_for
from __tests__.support import continuation_jobs
from __tests__.support.continuation_jobs import FollowUpJob
from __tests__.support.jobs import JOBS, LoggingJob, NoopJob, SleepJob, SyncSleepJob
from __tests__.test_worker import eventually, running, status_of
from main.base.jobs import JobRequest
from main.base.jobs.continuation.testing import run_job
from main.clock import ShiftedClock
from main.db.dialects.postgres import PING_AFTER_IDLE
from main.db.entities import JobStatus
from main.errors import SettingsError
from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def sqlite_queue(sqlite_url: str) -> Iterator[JobQueue]:
    """For what only SQLite has: a write lock for the whole file, no notification channel."""
    queue = set_job_queue(JobQueue(Settings.load(database_url=sqlite_url, **FAST), jobs=JOBS))
    yield queue
    queue.close()


@contextmanager
def rescuer(queue: JobQueue, every: float = 0.05) -> Iterator[list[int]]:
    """Another worker's crash recovery, run from a plain thread of its own (so that nothing in this process
    can starve it): it takes over any job whose lease expires. Yields the jobs it recovered."""
    recovered: list[int] = []
    done = threading.Event()

    def recover() -> None:
        while not done.wait(every):
            recovered.append(queue.store.recover_expired(queue.clock.now()).total)

    thread = threading.Thread(target=recover, name="rescuer")
    thread.start()
    try:
        yield recovered
    finally:
        done.set()
        thread.join()


async def test_a_long_poll_interval_cannot_starve_the_heartbeat(make_queue: QueueFactory) -> None:
    # As the issue puts it: a 2 s lease (beaten every 0.67 s by default) and a 5 s job. A lease of 0.6 s left
    # too little slack on a loaded CI machine: one beat late by 0.4 s (and two clocks' offsets) lost the job.
    worker = make_queue(poll_interval=60, lease_seconds=2.0)
    other = make_queue(lease_seconds=2.0)
    async with running(worker):
        job_id = await SleepJob.perform_later({"seconds": 5.0})  # two and a half leases long
        await eventually(lambda: status_of(worker, job_id) == JobStatus.RUNNING)
        with rescuer(other) as recovered:
            await eventually(lambda: status_of(worker, job_id) == JobStatus.COMPLETED)
    assert sum(recovered) == 0 and worker.store.get(job_id).attempts == 1


async def test_sync_jobs_cannot_starve_the_heartbeat(make_queue: QueueFactory) -> None:
    worker = make_queue(concurrency=60, lease_seconds=1.0)
    other = make_queue(lease_seconds=1.0)
    ids = await SyncSleepJob.perform_bulk([{"seconds": 2.5}] * 60)  # 60 threads held, each for 2.5 leases
    with rescuer(other) as recovered:
        await worker.run(burst=True)
    rows = [worker.store.get(job_id) for job_id in ids]
    assert sum(recovered) == 0
    assert [(row.status, row.attempts) for row in rows] == [(JobStatus.COMPLETED, 1)] * 60


def test_settings_refuse_a_heartbeat_not_well_inside_the_lease() -> None:
    with pytest.raises(SettingsError, match=r"JOBQUEUE_HEARTBEAT_INTERVAL \(20s\) must be at most half of "
                                            r"JOBQUEUE_LEASE_SECONDS \(30s\)"):
        Settings.load(heartbeat_interval="20s", lease_seconds=30)
    assert Settings.load(lease_seconds=30, poll_interval=60).effective_heartbeat_interval == 10


async def test_an_enqueue_inside_a_checkpoint_write_commits_with_the_checkpoint(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[*JOBS, *continuation_jobs.JOBS])
    with anyio.fail_after(20):  # before the engine's fix this hung for good on SQLite
        done = await run_job(await FollowUpJob.perform_later({"count": 3}))
        failed = await run_job(await FollowUpJob.perform_later({"count": 3, "fail_checkpoint_at": 2}))
    assert done.status == JobStatus.COMPLETED and failed.status == JobStatus.FAILED
    follow_ups = queue.store.list_jobs(types=["NoopJob"])
    # 3 from the first job; 1 from the second: the follow-up of item 2 rolled back with its checkpoint
    assert sorted(job.payload["n"] for job in follow_ups) == [1, 1, 2, 3]
    await queue.run(burst=True)
    assert {queue.store.get(job.id).status for job in follow_ups} == {JobStatus.COMPLETED}  # type: ignore[arg-type]


HOLD_THE_WRITE_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE jobs SET priority = priority + 1")
print("locked", flush=True)
time.sleep(30)
"""


def test_reads_proceed_while_another_process_holds_the_write_lock(sqlite_queue: JobQueue, sqlite_url: str) -> None:
    queue = sqlite_queue
    NoopJob.perform_bulk_sync([{"n": 1}, {"n": 2}])
    path = sqlite_url.removeprefix("sqlite:///")
    writer = subprocess.Popen([sys.executable, "-c", HOLD_THE_WRITE_LOCK, path], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        results: list[Any] = []
        reader = threading.Thread(target=lambda: results.extend([queue.get_status_sync(), queue.store.get(1)]))
        reader.start()
        reader.join(timeout=5)  # SQLite's busy timeout is 30 s: a read that waited for the lock would not be done
        assert not reader.is_alive(), "the read waited for another process's write transaction"
        assert results[0].counts_by_status["pending"] == 2 and results[1].priority == 0  # the committed state
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.slow
def test_a_worker_in_another_process_picks_up_at_once_without_a_short_poll(
    sqlite_queue: JobQueue, sqlite_url: str, start_worker: Any
) -> None:
    queue = sqlite_queue
    worker = start_worker(sqlite_url, "--concurrency", "1", JOBQUEUE_POLL_INTERVAL="60")
    warm_up = NoopJob.perform_later_sync({"n": 0})  # the worker's first claim happens at start
    wait_for(lambda: status_of(queue, warm_up) == JobStatus.COMPLETED, timeout=30)
    job_id = NoopJob.perform_later_sync({"n": 1})  # with a 60 s poll, only the WAL watch can pick this up soon
    wait_for(lambda: status_of(queue, job_id) == JobStatus.COMPLETED, timeout=10)
    worker.stop()


async def test_log_lines_inside_a_job_carry_its_context_and_go_to_stderr(
    queue: JobQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    job_id = await LoggingJob.perform_later({})
    await queue.run(burst=True)
    out, err = capsys.readouterr()
    assert out == ""
    [line] = [json.loads(line) for line in err.splitlines() if '"mail_sent"' in line]
    assert (line["job_id"], line["job_type"], line["attempt"]) == (job_id, "LoggingJob", 1)


class StatementCounter:
    """Counts the SQL statements that reach the database through `queue`'s engines."""

    def __init__(self, queue: JobQueue) -> None:
        self.statements: list[str] = []
        self.engines = {queue.database.engine, queue.database.read_engine}
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.split(None, 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
            self.statements.append(statement.split(None, 1)[0].upper())

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._count)


async def test_the_hot_path_issues_a_few_statements_per_batch_not_per_job(make_queue: QueueFactory) -> None:
    queue = make_queue(concurrency=50, heartbeat_interval=1.0)  # no lease renewal within the run
    jobs = 500
    await NoopJob.perform_bulk([{"n": n} for n in range(jobs)])
    await queue.database.run(queue.store.ensure_schema)
    counter = StatementCounter(queue)
    try:
        await queue.run(burst=True)
    finally:
        counter.close()
    assert queue.get_status_sync().counts_by_status["completed"] == jobs
    # Design: per batch of up to 50 jobs one claim and one outcome statement, so about 2 * 500 / 50 = 20; the
    # slack covers batches cut short by scheduling, crash recovery's 3 statements and cleanup's 1 at start.
    assert len(counter.statements) <= 60, counter.statements


@pytest.mark.postgres
def test_connections_the_server_dropped_while_idle_are_replaced(postgres_url: str) -> None:
    queue = set_job_queue(JobQueue(Settings.load(database_url=postgres_url, **FAST), jobs=JOBS))
    NoopJob.perform_later_sync({"n": 1})  # the pool now holds a connection
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # what a server restart does to it
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    time.sleep(PING_AFTER_IDLE + 0.1)
    job_id = NoopJob.perform_later_sync({"n": 2})  # pinged on checkout, found dead, replaced: no error
    assert queue.store.get(job_id).payload == {"n": 2}
    queue.close()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_lost_listen_connection_is_reconnected_and_catches_up(
    postgres_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """The LISTEN connection dies (a server restart, a proxy's idle timeout); a job enqueued elsewhere meanwhile
    is picked up at the reconnection, not at the next poll (30 s here)."""
    configure_logging("json", "info")
    worker = JobQueue(Settings.load(database_url=postgres_url, **{**FAST, "poll_interval": 30}), jobs=JOBS)
    elsewhere = JobQueue(Settings.load(database_url=postgres_url), jobs=JOBS)  # another process's queue

    def listeners() -> list[int]:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            return [pid for (pid,) in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                                                    "current_database() AND query LIKE 'LISTEN%'")]

    async with running(worker):
        [listener] = await eventually(listeners)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [listener])
        await eventually(lambda: listener not in listeners())
        [job_id] = elsewhere.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})])  # its NOTIFY finds no listener
        await eventually(lambda: status_of(worker, job_id) == JobStatus.COMPLETED, timeout=5)
        assert await eventually(lambda: set(listeners()) - {listener})  # listening again, on a new connection
    logged = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert "listen_connection_lost" in logged and "listen_connection_restored" in logged
    worker.close()
    elsewhere.close()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_job_another_process_enqueues_for_a_moment_later_starts_when_due(postgres_url: str) -> None:
    """A NOTIFY says when the jobs it announces are due: an idle worker claims again then, not at its next poll
    (30 s here). That covers a process whose reading of the server's clock is a little ahead, whose jobs for
    "now" are a little in the future for the workers (a CI run once waited for the poll so)."""
    worker = JobQueue(Settings.load(database_url=postgres_url, **{**FAST, "poll_interval": 30}), jobs=JOBS)
    elsewhere = JobQueue(Settings.load(database_url=postgres_url), jobs=JOBS, clock=ShiftedClock(0.3))
    async with running(worker):
        await anyio.sleep(0.1)  # the worker is now asleep until its next poll
        [now_there] = elsewhere.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})])
        [later] = elsewhere.enqueue_many_sync([JobRequest(NoopJob, {"n": 2}, delay=0.3)])
        await eventually(lambda: {status_of(worker, now_there), status_of(worker, later)} == {JobStatus.COMPLETED},
                         timeout=5)
    worker.close()
    elsewhere.close()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_notice_the_worker_cannot_read_wakes_it_and_breaks_nothing(postgres_url: str) -> None:
    """Anyone may NOTIFY on the channel: a payload that is not a due time is a wake-up like any other."""
    worker = JobQueue(Settings.load(database_url=postgres_url, **{**FAST, "poll_interval": 30}), jobs=JOBS)
    elsewhere = JobQueue(Settings.load(database_url=postgres_url), jobs=JOBS)
    async with running(worker):
        await anyio.sleep(0.1)
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SELECT pg_notify('jobqueue_new_jobs', 'not a time')")
            other.execute("SELECT pg_notify('jobqueue_new_jobs', '1e400')")
        [job_id] = elsewhere.enqueue_many_sync([JobRequest(NoopJob, {"n": 1})])
        await eventually(lambda: status_of(worker, job_id) == JobStatus.COMPLETED, timeout=5)
    worker.close()
    elsewhere.close()


class StatementRecorder:
    """Keeps the SQL and parameters of the UPDATE statements run through `queue`'s write engine."""

    def __init__(self, queue: JobQueue) -> None:
        self.engine = queue.database.engine
        self.updates: list[tuple[str, Any]] = []
        event.listen(self.engine, "before_cursor_execute", self._keep)

    def _keep(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "WITH")):  # the claim begins WITH its candidates
            self.updates.append((statement, parameters))

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._keep)

    def plan(self, statement: str, parameters: Any) -> str:
        """The engine's plan for one recorded statement, as text (not executed)."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                return "\n".join(str(row[-1]) for row in rows)
            connection.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask whether it *can* use one
            return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))


async def run_recorded(queue: JobQueue, *, analyze: bool = False) -> StatementRecorder:
    """Run `queue` in burst mode, keeping its UPDATE statements; `analyze`: refresh PostgreSQL's statistics first."""
    if analyze and queue.database.dialect.name == "postgresql":
        with queue.database.connection() as connection:
            connection.exec_driver_sql("ANALYZE jobs")
    recorder = StatementRecorder(queue)
    try:
        await queue.run(burst=True)
    finally:
        recorder.close()
    return recorder


async def test_the_claim_and_the_outcomes_use_the_partial_indexes(make_queue: QueueFactory) -> None:
    queue = make_queue(concurrency=5)
    await NoopJob.perform_bulk([{"n": n} for n in range(10)])
    recorder = await run_recorded(queue)
    assert queue.get_status_sync().counts_by_status["completed"] == 10
    claim = next(entry for entry in recorder.updates if "'pending'" in entry[0])
    assert "ix_jobs_pending" in recorder.plan(*claim)  # due jobs in claim order, no sort of every pending row
    recovery = next(entry for entry in recorder.updates if "lease_expires_at <" in entry[0])
    assert "ix_jobs_leased" in recorder.plan(*recovery)  # only running jobs, by lease


async def test_a_claim_for_some_queues_reads_their_index(make_queue: QueueFactory) -> None:
    queue = make_queue(concurrency=5, queues=("mail",))
    await NoopJob.perform_bulk([{"n": n} for n in range(2000)])  # enough rows that index costs are not a tie
    await NoopJob.perform_later({"n": 9}, queue="mail")
    recorder = await run_recorded(queue, analyze=True)
    assert queue.get_status_sync().counts_by_status == {"pending": 2000, "blocked": 0, "running": 0, "completed": 1,
                                                        "failed": 0, "cancelled": 0}
    claim = next(entry for entry in recorder.updates if "'pending'" in entry[0])
    assert "ix_jobs_pending_queue" in recorder.plan(*claim)


def test_enqueued_rows_are_stored_as_sqlalchemy_stores_them(sqlite_queue: JobQueue) -> None:
    """Enqueue writes through the driver, below SQLAlchemy's types: its rows must read and compare exactly
    like rows SQLAlchemy wrote (the claim compares stored times as text on SQLite)."""
    import json
    from datetime import UTC, datetime

    from sqlalchemy import text

    from main.db.entities import Job

    when = datetime(2031, 5, 6, 7, 8, 9, 5, tzinfo=UTC)
    job_id = NoopJob.perform_at_sync(when, {"n": 1})
    stored = sqlite_queue.store.get(job_id)
    with sqlite_queue.database.transaction() as session:
        session.add(Job(id=job_id + 1, type="NoopJob", payload={"n": 1}, max_retries=stored.max_retries, run_at=when,
                        created_at=stored.created_at, updated_at=stored.created_at))
    with sqlite_queue.database.engine.connect() as connection:
        rows = connection.execute(text("SELECT type, payload, status, queue, priority, attempts, max_retries, run_at, "
                                       "created_at, updated_at, cancel_requested FROM jobs ORDER BY id")).all()
    ours, sqlalchemys = ({**row._mapping, "payload": json.loads(row.payload)} for row in rows)
    assert ours == sqlalchemys
    assert sqlite_queue.store.get(job_id).run_at == when


async def test_outcomes_look_their_jobs_up_by_id_not_through_the_index_of_running_jobs(
        make_queue: QueueFactory) -> None:
    """Such an index holds an entry for every job that ran since the last vacuum: PostgreSQL chose to read all of it for
    each batch of outcomes (20-35 ms a batch at 15,000 jobs/s), taking the outcome's `status = 'running'` as the cue."""
    queue = make_queue(concurrency=100)
    await NoopJob.perform_bulk([{"n": n} for n in range(300)])
    recorder = await run_recorded(queue, analyze=True)  # no running jobs yet: their index looks cheapest to read
    assert queue.get_status_sync().counts_by_status["completed"] == 300
    outcomes = [entry for entry in recorder.updates if "jobs.id IN (SELECT jobs.id" in entry[0]]
    assert outcomes
    for outcome in outcomes:
        assert "ix_jobs_" not in recorder.plan(*outcome)  # by primary key only, no secondary index
