"""Stored results: what perform returns is kept with the job; queue.result() waits for it (woken by the database),
raises the stored error of a failed job, and gives up after its timeout."""

import json
from functools import partial

import anyio
import pytest

from __tests__.conftest import FAST, QueueFactory
from __tests__.support.jobs import JOBS, FailingJob, NoopJob, SleepJob, SumJob, Total
from __tests__.test_cli import run_cli
from __tests__.test_worker import running
from main.db.entities import JobStatus
from main.errors import JobCancelledError, JobFailedError, ResultTimeoutError
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

pytestmark = pytest.mark.anyio


async def test_the_return_value_is_stored_and_read_back_as_the_result_model(make_queue: QueueFactory) -> None:
    queue = make_queue()
    total_id = await SumJob.perform_later({"numbers": [1, 2, 3.5]})
    plain_id = await NoopJob.perform_later({"n": 7})
    await queue.run(burst=True)
    assert (await queue.get_job(total_id)).result == {"total": 6.5, "count": 3}
    assert await queue.result(total_id, timeout=1) == Total(total=6.5, count=3)
    assert await queue.result(plain_id, timeout=1) == 7


async def test_a_value_the_result_model_refuses_fails_the_job_without_a_retry(make_queue: QueueFactory) -> None:
    queue = make_queue()
    job_id = await SumJob.perform_later({"numbers": [1], "as_text": True})
    await queue.run(burst=True)
    job = await queue.get_job(job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.FAILED, 1, None)  # max_retries=2: none used
    assert "returned 'not a Total', which cannot be stored as its result" in (job.last_error or "")
    with pytest.raises(JobFailedError, match=f"job {job_id} failed: job 'SumJob' returned 'not a Total'"):
        await queue.result(job_id, timeout=1)


async def test_result_waits_for_a_job_another_queue_runs_woken_by_the_database(make_queue: QueueFactory) -> None:
    """The waiter looks every 30 s: only the database's signal (NOTIFY, the WAL file) can end its wait within 5."""
    worker = make_queue()
    waiter = make_queue(poll_interval=30)
    job_id = await SleepJob.perform_later({"seconds": 0.3})
    async with running(worker):
        assert await waiter.result(job_id, timeout=5) == "slept"


async def test_a_failed_or_cancelled_job_raises_and_an_unfinished_one_times_out(make_queue: QueueFactory) -> None:
    queue = make_queue()
    failed = await FailingJob.perform_later({"message": "the printer is on fire"})
    cancelled = await NoopJob.perform_later({"n": 1})
    await queue.cancel_job(cancelled)
    pending = await SleepJob.perform_in(3600, {"seconds": 0})
    with pytest.raises(ResultTimeoutError, match=f"job {pending} did not finish within 0.2s"):
        await queue.result(pending, timeout=0.2)
    with pytest.raises(JobCancelledError, match=f"job {cancelled} was cancelled"):
        await queue.result(cancelled, timeout=1)
    for _ in range(3):  # every attempt (max_retries=2), each retry made due at once
        await queue.work_one(failed)
        await queue.database.run(_due_now, queue, failed)
    with pytest.raises(JobFailedError, match="RuntimeError: the printer is on fire") as raised:
        await queue.result(failed, timeout=1)
    assert raised.value.job_id == failed


def _due_now(queue: object, job_id: int) -> None:
    from main.db.store import jobs_table

    with queue.database.connection() as connection:  # type: ignore[attr-defined]
        connection.execute(jobs_table.update().where(jobs_table.c.id == job_id).values(run_at=jobs_table.c.created_at))


def test_result_sync_blocks_until_the_result_is_there(make_queue: QueueFactory) -> None:
    queue = make_queue()
    job_id = SumJob.perform_later_sync({"numbers": [2, 2]})
    anyio.run(partial(queue.run, burst=True))
    assert queue.result_sync(job_id, timeout=1) == Total(total=4, count=2)


def test_jobs_show_prints_the_result(sqlite_url: str) -> None:
    queue = set_job_queue(JobQueue(Settings.load(database_url=sqlite_url, **FAST), jobs=JOBS))
    job_id = SumJob.perform_later_sync({"numbers": [5]})
    anyio.run(partial(queue.run, burst=True))
    shown = run_cli(queue.settings.database_url, "jobs", "show", str(job_id), "--json")
    assert json.loads(shown.stdout)["result"] == {"total": 5.0, "count": 1}
    assert '"total": 5.0' in run_cli(queue.settings.database_url, "jobs", "show", str(job_id)).stdout


@pytest.mark.postgres
def test_only_the_end_of_an_awaited_job_is_announced(postgres_url: str) -> None:
    """NOTIFY serialises the commits of every session that sends one: a batch of outcomes sends it only when
    someone waits for one of its jobs (queue.result() marks the job)."""
    import psycopg

    from main.db.dialects import Channel

    queue = set_job_queue(JobQueue(Settings.load(database_url=postgres_url, **FAST), jobs=JOBS))
    quiet, awaited = NoopJob.perform_bulk_sync([{"n": 1}, {"n": 2}])
    with psycopg.connect(postgres_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {Channel.FINISHED_JOBS.value}")
        anyio.run(partial(queue.work_one, quiet))
        assert list(listener.notifies(timeout=0.5)) == []
        queue.store.await_result(awaited)
        anyio.run(partial(queue.work_one, awaited))
        assert [note.channel for note in listener.notifies(timeout=2, stop_after=1)] == [Channel.FINISHED_JOBS.value]
    queue.close()


@pytest.mark.postgres
def test_a_batch_with_results_and_a_heartbeat_at_the_same_moment_do_not_deadlock(postgres_url: str) -> None:
    """Before: the batch wrote results row by row (in the order the jobs finished) and then completed them, while
    the heartbeat renewed the same rows in its own order: PostgreSQL found a deadlock a second later, long
    enough for a short lease to expire, and live workers' jobs ran twice (the 4-process fleet test, now and then)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from main.db.outcomes import Decision, Kind

    queue = set_job_queue(JobQueue(Settings.load(database_url=postgres_url, **FAST), jobs=JOBS))
    store = queue.store
    for _ in range(20):
        NoopJob.perform_bulk_sync([{"n": n} for n in range(40)])
        now = queue.clock.now()
        ids = [job.id for job in store.claim("w", (), 40, now, now + timedelta(seconds=30))]
        decisions = [Decision(job_id, Kind.COMPLETE, result=job_id) for job_id in reversed(ids)]
        with ThreadPoolExecutor(2) as pool:
            written = pool.submit(store.record, "w", decisions, now)
            beats = [pool.submit(store.heartbeat, "w", ids, now + timedelta(seconds=30)) for _ in range(5)]
            assert written.result(timeout=10).written == set(ids)  # a deadlock raises here (or in the beat)
            assert all(beat.result(timeout=10) for beat in beats)
    assert queue.get_status_sync().counts_by_status["completed"] == 800
    queue.close()
