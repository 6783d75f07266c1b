"""Resumable jobs in real worker processes: SIGTERM and SIGKILL mid-run, then another worker resumes; every
order is processed exactly once either way (its update and log row commit with the cursor)."""

import signal

import pytest
from sqlmodel import func, select

from __tests__.conftest import QueueFactory, wait_for
from main.base.jobs.continuation import Checkpoint
from main.db.entities import Order, OrderStatus, ProcessingLog
from main.db.entities.job import JobStatus
from main.demo.seed import seed
from main.jobs import JOBS, ProcessOrdersIterationJob, ProcessOrdersJob
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.slow


@pytest.fixture
def queue(make_queue: QueueFactory) -> JobQueue:
    queue = make_queue(jobs=JOBS)
    queue.store.ensure_schema()
    seed(queue.database, "quick", all_pending=True)
    return queue


def done(queue: JobQueue, job_id: int) -> int:
    raw = queue.store.get(job_id).checkpoint
    return Checkpoint.model_validate(raw).items_done if raw else 0


def assert_each_order_once(queue: JobQueue, job_type: str) -> None:
    with queue.database.transaction() as session:
        pending = session.exec(select(func.count()).select_from(Order).where(Order.status != OrderStatus.PROCESSED))
        logs = list(session.exec(select(ProcessingLog.item_key).where(ProcessingLog.job_type == job_type)))
    assert pending.one() == 0
    assert len(logs) == len(set(logs)) == 100


@pytest.mark.parametrize("job_class", [ProcessOrdersJob, ProcessOrdersIterationJob])
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_worker_s_job_is_resumed_by_another(
    queue: JobQueue, start_worker, database_url: str, job_class: type, how: str
) -> None:
    job_id = job_class.perform_later_sync({"item_delay": 0.02})
    env = {"JOBQUEUE_JOBS_MODULE": "main.jobs", "JOBQUEUE_LEASE_SECONDS": "1", "JOBQUEUE_SHUTDOWN_TIMEOUT": "5"}
    first = start_worker(database_url, **env)
    wait_for(lambda: done(queue, job_id) >= 20)
    first.signal(getattr(signal, how))
    code = first.wait()
    row = queue.store.get(job_id)
    if how == "SIGTERM":
        assert code == 0
        assert (row.status, row.attempts) == (JobStatus.PENDING, 0)  # stopped at an item boundary, at once
        state = Checkpoint.model_validate(row.checkpoint)
        assert state.resumptions == 1 and state.interrupted_by == "shutdown"
    else:
        assert row.status == JobStatus.RUNNING  # killed: nobody told the database
    stopped_at = done(queue, job_id)
    assert 20 <= stopped_at < 100
    second = start_worker(database_url, **env)
    wait_for(lambda: queue.store.get(job_id).status == JobStatus.COMPLETED, timeout=60)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    assert_each_order_once(queue, job_class.options.name)
    assert done(queue, job_id) == 100
