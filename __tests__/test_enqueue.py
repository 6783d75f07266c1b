"""Enqueue: validation before writing, scheduling, bulk in one transaction, sync twins, registration."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from __tests__.conftest import QueueFactory
from __tests__.support.jobs import FailingJob, NoopJob, PriorityJob, RecordJob, SleepJob
from main.base.jobs import JobRequest
from main.clock import FrozenClock
from main.db.entities import JobStatus
from main.errors import JobQueueError, JobRegistrationError, PayloadValidationError, SchedulingError
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


def count_rows(queue: JobQueue) -> int:
    return sum(n for _, _, n in queue.store.counts())


async def test_perform_later_writes_a_validated_pending_row(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock)
    job_id = await NoopJob.perform_later({"n": "7"})  # coerced by the schema
    job = queue.store.get(job_id)
    assert (job.type, job.status, job.payload, job.attempts) == ("NoopJob", JobStatus.PENDING, {"n": 7}, 0)
    assert (job.queue, job.priority, job.max_retries) == ("default", 0, 3)
    assert job.run_at == clock.now() and job.run_at.tzinfo is not None


async def test_invalid_payload_raises_and_writes_nothing(queue: JobQueue) -> None:
    with pytest.raises(PayloadValidationError, match="invalid payload for job 'NoopJob' \\(Nothing\\): n: "):
        await NoopJob.perform_later({"n": "not a number"})
    with pytest.raises(PayloadValidationError, match="seconds: Field required"):
        await SleepJob.perform_later({})
    assert count_rows(queue) == 0


async def test_bulk_is_all_or_nothing(queue: JobQueue) -> None:
    payloads = [{"n": i} for i in range(50)] + [{"n": "bad"}]
    with pytest.raises(PayloadValidationError):
        await NoopJob.perform_bulk(payloads)
    assert count_rows(queue) == 0
    ids = await NoopJob.perform_bulk(payloads[:-1])
    assert len(ids) == 50 and ids == sorted(ids)
    assert [queue.store.get(job_id).payload["n"] for job_id in (ids[0], ids[-1])] == [0, 49]


async def test_enqueue_many_mixes_job_types_in_one_transaction(queue: JobQueue, tmp_path) -> None:
    ids = await queue.enqueue_many(
        [JobRequest(NoopJob, {"n": 1}), JobRequest(PriorityJob, {"path": str(tmp_path / "x")}, priority=9)]
    )
    first, second = (queue.store.get(job_id) for job_id in ids)
    assert (first.type, second.type, second.queue, second.priority) == ("NoopJob", "PriorityJob", "reports", 9)


async def test_perform_at_requires_an_aware_datetime(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock)
    with pytest.raises(SchedulingError, match="has no timezone"):
        await NoopJob.perform_at(datetime(2030, 1, 2, 3, 0), {"n": 1})
    assert count_rows(queue) == 0
    paris_winter = timezone(timedelta(hours=1))
    job_id = await NoopJob.perform_at(datetime(2030, 1, 2, 3, 0, tzinfo=paris_winter), {"n": 1})
    assert queue.store.get(job_id).run_at == datetime(2030, 1, 2, 2, 0, tzinfo=UTC)


async def test_perform_in_uses_the_injected_clock(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock)
    job_id = await NoopJob.perform_in(90, {"n": 1})
    other = await NoopJob.perform_in(timedelta(minutes=5), {"n": 2})
    assert queue.store.get(job_id).run_at == clock.now() + timedelta(seconds=90)
    assert queue.store.get(other).run_at == clock.now() + timedelta(minutes=5)
    with pytest.raises(SchedulingError, match="must not be negative"):
        await NoopJob.perform_in(-1, {"n": 1})


async def test_queue_and_priority_overrides(queue: JobQueue) -> None:
    job_id = await FailingJob.perform_later({}, queue="urgent", priority=5)
    job = queue.store.get(job_id)
    assert (job.queue, job.priority, job.max_retries) == ("urgent", 5, 2)


async def test_unregistered_job_class_is_an_error(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[NoopJob])
    with pytest.raises(JobRegistrationError, match="job 'SleepJob' is not registered with this queue"):
        await SleepJob.perform_later({"seconds": 1})
    assert count_rows(queue) == 0


def test_sync_twins_write_rows(queue: JobQueue) -> None:
    first = NoopJob.perform_later_sync({"n": 1})
    second = NoopJob.perform_in_sync(10, {"n": 2})
    third = NoopJob.perform_at_sync(datetime(2031, 1, 1, tzinfo=UTC), {"n": 3})
    bulk = NoopJob.perform_bulk_sync([{"n": 4}, {"n": 5}])
    assert [queue.store.get(job_id).payload["n"] for job_id in (first, second, third, *bulk)] == [1, 2, 3, 4, 5]


async def test_sync_twins_refuse_to_block_an_event_loop(queue: JobQueue) -> None:
    with pytest.raises(JobQueueError, match="would block the running event loop"):
        NoopJob.perform_later_sync({"n": 1})
    assert count_rows(queue) == 0


def test_register_rejects_undecorated_classes_and_name_clashes(make_queue: QueueFactory) -> None:
    from main.base.jobs import BaseJob

    queue = make_queue(jobs=[NoopJob])

    class Plain(BaseJob):  # type: ignore[type-arg]
        async def perform(self, payload: object) -> None: ...

    with pytest.raises(JobRegistrationError, match="not a BaseJob decorated with @job"):
        queue.register(Plain)
    queue.register(NoopJob)  # the same class again is harmless
    assert queue.get_available_job_types() == ["NoopJob"]


async def test_bulk_returns_each_jobs_id_in_the_order_given(queue: JobQueue) -> None:
    when = queue.clock.now() + timedelta(hours=1)
    requests = [
        JobRequest(NoopJob, {"n": n}, queue=f"q{n % 3}", priority=n % 5, delay=None if n % 2 else 60)
        if n % 4 else JobRequest(RecordJob, {"path": f"/tmp/ü\u2028'\";--{n}"}, run_at=when)
        for n in range(300)
    ]
    ids = await queue.enqueue_many(requests)
    assert len(set(ids)) == 300
    for job_id, request in zip(ids, requests, strict=True):
        row = queue.store.get(job_id)
        payload = request.payload if isinstance(request.payload, dict) else request.payload.model_dump()
        assert (row.type, row.queue) == (request.job_class.options.name, request.queue or "default")
        assert {key: row.payload[key] for key in payload} == payload
        assert (row.status, row.attempts, row.cancel_requested) == (JobStatus.PENDING, 0, False)
        if request.run_at:
            assert row.run_at == when


def _refuse_queue(queue: JobQueue, name: str) -> None:
    """Make the database itself refuse rows of queue `name` (a check the library cannot see coming)."""
    database = queue.store.database
    with database.engine.begin() as connection:
        if database.dialect.name == "sqlite":
            connection.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.queue = '{name}' "
                                       "BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            connection.exec_driver_sql(f"ALTER TABLE jobs ADD CONSTRAINT refuse CHECK (queue <> '{name}')")


async def test_a_write_the_database_refuses_stores_nothing_and_leaves_transactions_whole(queue: JobQueue) -> None:
    await NoopJob.perform_later({"n": 0})  # the schema exists
    _refuse_queue(queue, "refused")
    with pytest.raises(DBAPIError):
        await queue.enqueue_many([JobRequest(NoopJob, {"n": 1}), JobRequest(NoopJob, {"n": 2}, queue="refused")])
    assert count_rows(queue) == 1
    [job_id] = await NoopJob.perform_bulk([{"n": 3}])
    # The enqueue connection went back to the pool as it came: a later transaction still rolls back whole.
    with pytest.raises(RuntimeError), queue.store.database.transaction() as session:
        session.execute(text("UPDATE jobs SET priority = 5 WHERE id = :id"), {"id": job_id})
        raise RuntimeError("abandon the transaction")
    assert queue.store.get(job_id).priority == 0 and count_rows(queue) == 2
