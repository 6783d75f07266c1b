"""The worker loop in-process: claim, run, record; concurrency, priority, timeouts, retries, cancel, cleanup."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from __tests__.conftest import QueueFactory
from __tests__.support.jobs import (
    FailingJob,
    FanOutJob,
    LinearFailingJob,
    NoopJob,
    Nothing,
    PriorityJob,
    RejectingJob,
    SleepJob,
    SyncJob,
    TimeoutJob,
)
from main.base.jobs import BaseJob, job
from main.clock import FrozenClock
from main.db.entities import Job, JobStatus
from main.db.rows import NewJob
from main.errors import InvalidJobStateError, JobNotFoundError
from main.services.job_queue import JobQueue, QueueStatus

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(queue: JobQueue) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        await queue.start(tg)
        yield
        queue.stop()


async def eventually(condition: Callable[[], Any], timeout: float = 10) -> Any:
    with anyio.fail_after(timeout):
        while not (result := await anyio.to_thread.run_sync(condition)):
            await anyio.sleep(0.01)
    return result


def status_of(queue: JobQueue, job_id: int) -> JobStatus:
    return queue.store.get(job_id).status


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite has no row locks: its writer waits
async def test_burst_does_not_stop_while_a_due_job_is_only_locked_for_a_moment(queue: JobQueue) -> None:
    """A claim skips rows another transaction holds (SKIP LOCKED): a heartbeat's renewal can hold a job it has
    just released. Finding nothing to claim then is no proof that nothing is due."""
    job_id = await NoopJob.perform_later({"n": 1})
    with queue.database.engine.connect() as holder:
        holder.exec_driver_sql("SELECT id FROM jobs WHERE id = %(id)s FOR UPDATE", {"id": job_id})
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: queue.run(burst=True))
            await anyio.sleep(0.3)
            assert queue.store.get(job_id).status == JobStatus.PENDING  # skipped while held...
            holder.rollback()
    assert queue.store.get(job_id).status == JobStatus.COMPLETED  # ... and run once free, before the burst ended


async def test_burst_runs_every_due_job_once(queue: JobQueue) -> None:
    ids = await NoopJob.perform_bulk([{"n": i} for i in range(20)])
    await queue.run(burst=True)
    jobs = [queue.store.get(job_id) for job_id in ids]
    assert {(job.status, job.attempts) for job in jobs} == {(JobStatus.COMPLETED, 1)}
    assert all(job.finished_at and job.worker_id == queue.worker_id for job in jobs)


_in_flight = {"now": 0, "max": 0}


class Probe(Nothing):
    pass


@job(name="ConcurrencyProbeJob")
class ConcurrencyProbeJob(BaseJob[Probe]):
    async def perform(self, payload: Probe) -> None:
        _in_flight["now"] += 1
        _in_flight["max"] = max(_in_flight["max"], _in_flight["now"])
        await anyio.sleep(0.05)
        _in_flight["now"] -= 1


async def test_parallel_up_to_the_concurrency_limit(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[ConcurrencyProbeJob], concurrency=3)
    await ConcurrencyProbeJob.perform_bulk([{}] * 10)
    await queue.run(burst=True)
    assert _in_flight["max"] == 3
    assert queue.get_status_sync().counts_by_status["completed"] == 10


async def test_higher_priority_runs_first_and_queues_filter(make_queue: QueueFactory, tmp_path: Path) -> None:
    queue = make_queue(concurrency=1, queues=("reports",))
    order = tmp_path / "order"
    low = await PriorityJob.perform_later({"path": str(order)}, priority=1)
    high = await PriorityJob.perform_later({"path": str(order)}, priority=10)
    other_queue = await NoopJob.perform_later({"n": 1})
    await queue.run(burst=True)
    assert order.read_text().split() == [str(high), str(low)]
    assert status_of(queue, other_queue) == JobStatus.PENDING  # "default" is not served by this worker


async def test_timeout_cancels_a_hanging_job_and_counts_an_attempt(
    make_queue: QueueFactory, clock: FrozenClock
) -> None:
    queue = make_queue(clock=clock)  # the timeout is real time; the retry's run_at is on the frozen clock
    job_id = await TimeoutJob.perform_later({"seconds": 30})
    with anyio.fail_after(10):
        await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert "timed out after 0.2s" in (job.last_error or "")
    clock.advance(0.01)  # the fixed 0.01 s backoff
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 2)


@pytest.mark.parametrize(("job_class", "delays"), [(FailingJob, [10, 20]), (LinearFailingJob, [5, 10, 15])])
async def test_retries_follow_the_backoff_then_fail(
    make_queue: QueueFactory, clock: FrozenClock, job_class: type[BaseJob[Any]], delays: list[float]
) -> None:
    queue = make_queue(clock=clock)
    job_id = await job_class.perform_later({"message": "gateway down"})
    for attempt, delay in enumerate(delays, start=1):
        await queue.run(burst=True)
        job = queue.store.get(job_id)
        assert (job.status, job.attempts) == (JobStatus.PENDING, attempt)
        assert job.run_at == clock.now() + timedelta(seconds=delay)
        clock.advance(delay - 0.5)
        await queue.run(burst=True)  # not due yet: nothing happens
        assert queue.store.get(job_id).attempts == attempt
        clock.advance(0.5)
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, len(delays) + 1)
    assert job.last_error == "RuntimeError: gateway down"
    assert "Traceback" in (job.last_traceback or "") and "RuntimeError: gateway down" in (job.last_traceback or "")


async def test_non_retryable_error_fails_at_once(queue: JobQueue) -> None:
    job_id = await RejectingJob.perform_later({"message": "address rejected"})
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.FAILED, 1, "NonRetryableError: address rejected")


async def test_unknown_type_and_invalid_stored_payload_fail_cleanly(queue: JobQueue, clock: FrozenClock) -> None:
    now = queue.clock.now()
    ghost, stale = queue.store.enqueue(
        [NewJob("GhostJob", "{}", "default", 0, 3, now), NewJob("NoopJob", '{"n": "seven"}', "default", 0, 3, now)], now
    )
    fine = await NoopJob.perform_later({"n": 1})
    await queue.run(burst=True)
    ghost_job, stale_job = queue.store.get(ghost), queue.store.get(stale)
    assert (ghost_job.status, ghost_job.attempts) == (JobStatus.FAILED, 1)
    assert "unknown job type 'GhostJob'" in (ghost_job.last_error or "")
    assert stale_job.status == JobStatus.FAILED and "no longer valid" in (stale_job.last_error or "")
    assert status_of(queue, fine) == JobStatus.COMPLETED  # the worker kept going


async def test_sync_perform_runs_in_a_thread(queue: JobQueue) -> None:
    job_id = await SyncJob.perform_later({"n": 2})
    await queue.run(burst=True)
    assert status_of(queue, job_id) == JobStatus.COMPLETED


async def test_cancel_pending_job(queue: JobQueue) -> None:
    job_id = await NoopJob.perform_later({"n": 1})
    assert await queue.cancel_job(job_id) == JobStatus.CANCELLED
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.CANCELLED, 0)
    with pytest.raises(InvalidJobStateError, match=f"job {job_id} is already cancelled"):
        await queue.cancel_job(job_id)
    with pytest.raises(JobNotFoundError, match="no job with id 999999"):
        await queue.cancel_job(999_999)


async def test_cancel_running_job_in_this_process(queue: JobQueue) -> None:
    async with running(queue):
        job_id = await SleepJob.perform_later({"seconds": 30})
        await eventually(lambda: status_of(queue, job_id) == JobStatus.RUNNING)
        assert await queue.cancel_job(job_id) == JobStatus.RUNNING  # asked; it stops right away
        await eventually(lambda: status_of(queue, job_id) == JobStatus.CANCELLED, timeout=2)


async def test_cancel_running_job_from_another_queue_instance(make_queue: QueueFactory) -> None:
    worker, other = make_queue(poll_interval=0.05), make_queue()
    async with running(worker):
        job_id = await SleepJob.perform_later({"seconds": 30})
        await eventually(lambda: status_of(worker, job_id) == JobStatus.RUNNING)
        await anyio.to_thread.run_sync(other.cancel_job_sync, job_id)  # only the database connects them
        await eventually(lambda: status_of(worker, job_id) == JobStatus.CANCELLED, timeout=2)
    assert queue_error(worker, job_id) == "cancelled while running"


def queue_error(queue: JobQueue, job_id: int) -> str | None:
    return queue.store.get(job_id).last_error


async def test_pending_jobs_survive_a_restart(make_queue: QueueFactory) -> None:
    first = make_queue()
    ids = await NoopJob.perform_bulk([{"n": i} for i in range(5)])
    first.close()
    second = make_queue()  # a new process's queue on the same database
    await second.run(burst=True)
    assert {status_of(second, job_id) for job_id in ids} == {JobStatus.COMPLETED}


async def test_enqueue_wakes_an_idle_worker_at_once(make_queue: QueueFactory) -> None:
    queue = make_queue(poll_interval=60)
    async with running(queue):
        await anyio.sleep(0.1)  # the worker is now asleep for a minute
        job_id = await NoopJob.perform_later({"n": 1})
        await eventually(lambda: status_of(queue, job_id) == JobStatus.COMPLETED, timeout=5)


async def test_a_job_enqueued_for_a_moment_later_starts_when_due_not_at_the_next_poll(make_queue: QueueFactory) -> None:
    queue = make_queue(poll_interval=60)
    async with running(queue):
        await anyio.sleep(0.1)  # the worker is now asleep for a minute
        job_id = await NoopJob.perform_in(0.3, {"n": 1})
        await eventually(lambda: status_of(queue, job_id) == JobStatus.COMPLETED, timeout=5)
        assert queue.store.get(job_id).started_at >= queue.store.get(job_id).run_at


@job(name="FailsOnceJob", max_retries=1, backoff="fixed", base_delay=0.3)
class FailsOnceJob(BaseJob[Nothing]):
    async def perform(self, payload: Nothing) -> None:
        if self.context.attempt == 1:
            raise RuntimeError("the first attempt fails")


async def test_a_retry_starts_when_its_backoff_is_over_not_at_the_next_poll(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[FailsOnceJob], poll_interval=60)
    async with running(queue):
        await anyio.sleep(0.1)
        job_id = await FailsOnceJob.perform_later({})
        await eventually(lambda: status_of(queue, job_id) == JobStatus.COMPLETED, timeout=5)
        assert queue.store.get(job_id).attempts == 2


async def test_a_sync_job_enqueues_from_its_thread_and_wakes_the_worker(make_queue: QueueFactory) -> None:
    queue = make_queue(poll_interval=60, shutdown_timeout=5)  # the parent's thread is not abandoned at the stop
    async with running(queue):
        await anyio.sleep(0.1)
        parent = await FanOutJob.perform_later({"children": 3, "hold": 2})
        # the children run while the parent still holds its slot: only the enqueue's wake-up explains that
        await eventually(lambda: queue.get_status_sync().counts_by_status["completed"] == 3, timeout=1.5)
        assert status_of(queue, parent) == JobStatus.RUNNING
    assert status_of(queue, parent) == JobStatus.COMPLETED


async def test_stop_lets_running_jobs_finish(queue: JobQueue) -> None:
    async with running(queue):
        job_id = await SleepJob.perform_later({"seconds": 0.2})
        await eventually(lambda: status_of(queue, job_id) == JobStatus.RUNNING)
    assert status_of(queue, job_id) == JobStatus.COMPLETED


async def test_a_stop_while_the_worker_starts_up_is_not_forgotten(queue: JobQueue) -> None:
    """A SIGTERM to a worker that has just started (a deploy, a scale-down). Before: run() cleared the stop flag
    after its first database call, so a stop during that call was lost and the worker ran on until killed (found as
    a worker process of test_limits that ignored SIGTERM once in a dozen runs under load)."""
    job_id = await NoopJob.perform_later({"n": 1})
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run)
            await anyio.sleep(0)  # run() is now in its first database call (the schema's check, in a thread)
            queue.stop()
    assert status_of(queue, job_id) == JobStatus.PENDING  # stopped before it claimed anything


async def test_stop_returns_unfinished_jobs_to_pending_without_an_attempt(queue: JobQueue) -> None:
    async with running(queue):
        job_id = await SleepJob.perform_later({"seconds": 30})
        await eventually(lambda: status_of(queue, job_id) == JobStatus.RUNNING)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts, job.lease_expires_at) == (JobStatus.PENDING, 0, None)


async def test_heartbeats_keep_a_long_job_leased(make_queue: QueueFactory) -> None:
    worker, rescuer = make_queue(lease_seconds=0.3), make_queue(lease_seconds=0.3)
    async with running(worker):
        job_id = await SleepJob.perform_later({"seconds": 1.0})
        await eventually(lambda: status_of(worker, job_id) == JobStatus.RUNNING)
        for _ in range(8):  # well past the lease: only heartbeats keep the job from being taken over
            await anyio.sleep(0.1)
            assert (await anyio.to_thread.run_sync(rescuer.store.recover_expired, rescuer.clock.now())).total == 0
        await eventually(lambda: status_of(worker, job_id) == JobStatus.COMPLETED)
    assert worker.store.get(job_id).attempts == 1


async def test_expired_lease_is_recovered_and_run_again(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock)
    job_id = await NoopJob.perform_later({"n": 1})
    [claimed] = queue.store.claim("dead-worker", (), 1, clock.now(), clock.now() + timedelta(seconds=2))
    await queue.run(burst=True)
    assert status_of(queue, job_id) == JobStatus.RUNNING  # lease still valid: left alone
    clock.advance(3)
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.COMPLETED, 2, queue.worker_id)
    assert "worker dead-worker stopped renewing its lease" in (job.last_error or "")


async def test_expired_lease_without_retries_left_fails(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock)
    job_id = await RejectingJob.perform_later({})
    with queue.database.transaction() as session:
        session.get_one(Job, job_id).max_retries = 0
    queue.store.claim("dead-worker", (), 1, clock.now(), clock.now() + timedelta(seconds=2))
    clock.advance(3)
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert job.status == JobStatus.FAILED and "no retries left" in (job.last_error or "")


async def test_cleanup_deletes_only_old_finished_jobs(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock, retention=3600)
    old_done, old_failed, old_cancelled = (
        await NoopJob.perform_later({"n": 1}), await RejectingJob.perform_later({}), await NoopJob.perform_later({})
    )
    await queue.cancel_job(old_cancelled)
    await queue.run(burst=True)
    old_pending = await NoopJob.perform_in(86400, {"n": 2})
    clock.advance(3601)
    assert await queue.cleanup() == 3
    recent_done = await NoopJob.perform_later({"n": 3})
    await queue.run(burst=True)
    assert await queue.cleanup() == 0
    remaining = {job.id for job in queue.store.list_jobs()}
    assert remaining == {old_pending, recent_done}
    assert {old_done, old_failed, old_cancelled}.isdisjoint(remaining)


async def test_periodic_cleanup_runs_in_the_worker(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock, retention=10, cleanup_interval=0.05)
    job_id = await NoopJob.perform_later({"n": 1})
    await queue.run(burst=True)
    clock.advance(11)
    async with running(queue):
        await eventually(lambda: not queue.store.list_jobs(), timeout=5)
    with pytest.raises(JobNotFoundError):
        queue.store.get(job_id)


async def test_get_status(queue: JobQueue) -> None:
    await NoopJob.perform_bulk([{"n": 1}, {"n": 2}])
    await FailingJob.perform_later({}, queue="other")
    idle = await queue.get_status()
    assert idle.uptime_seconds is None
    assert idle.counts_by_status == {"pending": 3, "blocked": 0, "running": 0, "completed": 0, "failed": 0,
                                     "cancelled": 0}
    assert idle.counts_by_queue == {"default": {"pending": 2}, "other": {"pending": 1}}
    assert "NoopJob" in idle.registered_types and idle.worker_id == queue.worker_id
    async with running(queue):
        sleeper = await SleepJob.perform_later({"seconds": 30})
        # the quick jobs finish; the sleeper stays in the running list
        def only_the_sleeper_runs() -> QueueStatus | None:
            status = queue.get_status_sync()
            return status if [job.id for job in status.running] == [sleeper] else None

        busy = await eventually(only_the_sleeper_runs)
        assert busy.running[0].type == "SleepJob" and busy.running[0].worker_id == queue.worker_id
        assert busy.uptime_seconds is not None and busy.uptime_seconds > 0
        await queue.cancel_job(sleeper)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_worker_survives_a_database_outage(
    make_queue: QueueFactory, database_url: str, postgres_admin_url: str
) -> None:
    import psycopg
    from sqlalchemy import make_url

    name = make_url(database_url).database
    queue = make_queue(poll_interval=0.05)

    def outage(allow: bool) -> None:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
            if not allow:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])

    async with running(queue):
        before = await NoopJob.perform_later({"n": 1})
        await eventually(lambda: status_of(queue, before) == JobStatus.COMPLETED)
        await anyio.to_thread.run_sync(outage, False)
        await anyio.sleep(0.5)  # the worker's ticks fail here, and it keeps going
        await anyio.to_thread.run_sync(outage, True)
        after = await NoopJob.perform_later({"n": 2})
        await eventually(lambda: status_of(queue, after) == JobStatus.COMPLETED, timeout=40)
