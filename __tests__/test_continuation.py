"""Resumable jobs, both styles, on SQLite and PostgreSQL: interruption and resume, exactly-once database
effects, errors, max_run_time, max_resumptions, finished steps, isolated steps, hooks, test helpers."""

from typing import Any

import pytest
from sqlmodel import select

from __tests__.conftest import QueueFactory
from __tests__.support.continuation_jobs import (
    JOBS as TEST_JOBS,
)
from __tests__.support.continuation_jobs import (
    BatchedCheckpointsJob,
    CountingIterationJob,
    ResumingOnErrorJob,
    ShortRunsJob,
    StepsJob,
    TooManyRunsJob,
)
from main.base.jobs.continuation import Checkpoint, ContinuableJob
from main.base.jobs.continuation.testing import interrupt_after_items, interrupt_after_step, interrupt_at, run_job
from main.clock import FrozenClock
from main.db.entities import CustomerReport, Order, OrderStatus, ProcessingLog
from main.db.entities.job import JobStatus
from main.demo.catalog import DEMO_JOBS, PAIRS
from main.demo.seed import create_tables, reset_orders, seed
from main.jobs import JOBS
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio

[(_, ProcessOrdersJob, ProcessOrdersIterationJob), (_, GenerateReportsJob, GenerateReportsIterationJob),
 (_, BatchEmailJob, BatchEmailIterationJob)] = PAIRS


@pytest.fixture
def queue(make_queue: QueueFactory, clock: FrozenClock) -> JobQueue:
    queue = make_queue(clock=clock, jobs=[*JOBS, *TEST_JOBS])
    queue.store.ensure_schema()
    seed(queue.database, "quick", all_pending=True)
    return queue


def logged(queue: JobQueue, job_type: str) -> list[str]:
    with queue.database.transaction() as session:
        rows = session.exec(select(ProcessingLog).where(ProcessingLog.job_type == job_type).order_by(ProcessingLog.id))
        return [row.item_key for row in rows]


def checkpoint(queue: JobQueue, job_id: int) -> Checkpoint:
    return Checkpoint.model_validate(queue.store.get(job_id).checkpoint)


# (job class, payload, items in all) for the six demo jobs on the quick data set: 100 orders, 100 orders of
# customers, 500 recipients in batches of 50
ITEMS = {"process-orders": 100, "generate-reports": 100, "batch-email": 10}
SIX = [(job_class, {}, ITEMS[alias.removesuffix("-iteration")]) for alias, job_class in DEMO_JOBS.items()]


@pytest.mark.parametrize(("job_class", "payload", "items"), SIX, ids=[s[0].__name__ for s in SIX])
async def test_interrupted_after_k_resumes_at_k_plus_1_each_item_once(
    queue: JobQueue, job_class: type[ContinuableJob[Any]], payload: dict, items: int
) -> None:
    k = 7
    job_id = await job_class.perform_later(payload)
    row = await run_job(job_id, interrupt=interrupt_after_items(k))
    assert (row.status, row.attempts) == (JobStatus.PENDING, 0)  # a pause is not a failed attempt
    state = checkpoint(queue, job_id)
    [step] = state.steps.values()
    assert (step.done, step.total, state.resumptions) == (k, items, 1)
    first_run = logged(queue, job_class.options.name)
    row = await run_job(job_id)
    assert row.status == JobStatus.COMPLETED
    every = logged(queue, job_class.options.name)
    assert every[: len(first_run)] == first_run  # nothing of the first run was redone
    assert len(every) == len(set(every)) and len(every) >= items  # each item once (emails: 50 per batch item)
    assert checkpoint(queue, job_id).steps[next(iter(state.steps))].done == items


@pytest.mark.parametrize("job_class", [ProcessOrdersJob, ProcessOrdersIterationJob])
async def test_every_order_processed_exactly_once(queue: JobQueue, job_class: type[ContinuableJob[Any]]) -> None:
    job_id = await job_class.perform_later({})
    for k in (10, 25, 40):  # three interruptions, four runs
        await run_job(job_id, interrupt=interrupt_after_items(k))
    await run_job(job_id)
    with queue.database.transaction() as session:
        orders = list(session.exec(select(Order)))
    assert {order.status for order in orders} == {OrderStatus.PROCESSED}
    expected = [str(order.id) for order in sorted(orders, key=lambda order: order.id or 0)]
    assert sorted(logged(queue, job_class.options.name), key=int) == expected
    assert checkpoint(queue, job_id).resumptions == 3


@pytest.mark.parametrize("job_class", [GenerateReportsJob, GenerateReportsIterationJob])
async def test_nested_iteration_resumes_at_the_right_customer_and_order(
    queue: JobQueue, job_class: type[ContinuableJob[Any]]
) -> None:
    with queue.database.transaction() as session:
        orders_of_7 = [o.id for o in session.exec(select(Order).where(Order.customer_id == 7).order_by(Order.id))]
    step = "build_reports" if job_class is GenerateReportsJob else "iterate"
    job_id = await job_class.perform_later({})
    await run_job(job_id, interrupt=interrupt_at(step, [6, orders_of_7[0]]))  # inside customer 7, after its 1st order
    state = checkpoint(queue, job_id)
    assert state.steps[step].cursor == [6, orders_of_7[0]]
    assert logged(queue, job_class.options.name)[-1] == f"7:{orders_of_7[0]}"
    await run_job(job_id)
    keys = logged(queue, job_class.options.name)
    assert keys[keys.index(f"7:{orders_of_7[0]}") + 1] == f"7:{orders_of_7[1]}"  # the next order, same customer
    with queue.database.transaction() as session:
        reports = {r.customer_id: r for r in session.exec(select(CustomerReport))}
        orders = list(session.exec(select(Order)))
    assert len(reports) == 50
    for customer_id, report in reports.items():
        mine = [o for o in orders if o.customer_id == customer_id]
        assert (report.order_count, report.total_cents) == (len(mine), sum(o.amount_cents for o in mine))


@pytest.mark.parametrize("job_class", [BatchEmailJob, BatchEmailIterationJob])
async def test_batch_interrupted_between_batches_resumes_at_the_next(
    queue: JobQueue, job_class: type[ContinuableJob[Any]]
) -> None:
    job_id = await job_class.perform_later({"batch_size": 50})
    await run_job(job_id, interrupt=interrupt_after_items(3))
    assert len(logged(queue, job_class.options.name)) == 150
    [state] = checkpoint(queue, job_id).steps.values()
    assert (state.done, state.total) == (3, 10)
    await run_job(job_id)
    deliveries = logged(queue, job_class.options.name)
    assert len(deliveries) == len(set(deliveries)) == 500


async def test_an_error_retries_from_the_last_checkpoint(queue: JobQueue, clock: FrozenClock) -> None:
    job_id = await CountingIterationJob.perform_later({"count": 10, "fail_at": 6})
    await queue.run(burst=True)
    row = queue.store.get(job_id)
    assert (row.status, row.attempts, row.last_error) == (JobStatus.PENDING, 1, "RuntimeError: item 6 failed")
    assert checkpoint(queue, job_id).steps["iterate"].cursor == 5  # items 1-5 are kept
    clock.advance(5)
    await queue.run(burst=True)
    row = queue.store.get(job_id)
    assert (row.status, row.attempts) == (JobStatus.COMPLETED, 2)
    assert logged(queue, "CountingIterationJob") == [str(n) for n in range(1, 11)]


async def test_an_error_after_advancing_can_resume_instead_of_retrying(queue: JobQueue) -> None:
    job_id = await ResumingOnErrorJob.perform_later({"count": 10, "fail_at": 4})
    row = await run_job(job_id)
    assert (row.status, row.attempts) == (JobStatus.PENDING, 0)  # max_retries=0, yet no retry was used
    state = checkpoint(queue, job_id)
    assert state.resumptions == 1 and "RuntimeError: item 4 failed" in (state.interrupted_by or "")
    row = await run_job(job_id)
    assert row.status == JobStatus.FAILED  # attempt 1 again: the item still fails, and there is no progress
    assert logged(queue, "ResumingOnErrorJob") == ["1", "2", "3"]


async def test_max_run_time_requeues_and_the_job_finishes_over_several_runs(queue: JobQueue) -> None:
    job_id = await ShortRunsJob.perform_later({"count": 12, "item_delay": 0.02})
    await queue.run(burst=True)
    row = queue.store.get(job_id)
    assert (row.status, row.attempts) == (JobStatus.COMPLETED, 1)
    assert checkpoint(queue, job_id).resumptions >= 2
    assert "max_run_time of 0.05s reached" in (checkpoint(queue, job_id).interrupted_by or "")
    assert logged(queue, "ShortRunsJob") == [str(n) for n in range(1, 13)]


async def test_max_resumptions_fails_the_job(queue: JobQueue) -> None:
    job_id = await TooManyRunsJob.perform_later({"count": 50, "item_delay": 0.02})
    await queue.run(burst=True)
    row = queue.store.get(job_id)
    assert row.status == JobStatus.FAILED and row.attempts == 1
    assert row.last_error and row.last_error.startswith("MaxResumptionsExceededError: job 'TooManyRunsJob' was "
                                                        "interrupted 2 times, its max_resumptions")
    assert checkpoint(queue, job_id).resumptions == 2


async def test_finished_steps_are_skipped_and_code_outside_steps_runs_each_time(queue: JobQueue) -> None:
    StepsJob.calls = []
    job_id = await StepsJob.perform_later({"per_step": 3})
    await run_job(job_id, interrupt=interrupt_at("process", 2))
    assert StepsJob.calls == ["on_start", "perform", "start:prepare", "prepare", "done:prepare", "start:process",
                              "process:1", "process:2", "on_shutdown"]
    StepsJob.calls = []
    row = await run_job(job_id)  # stops again before the isolated step: this run already advanced
    assert row.status == JobStatus.PENDING
    assert StepsJob.calls == ["on_resume", "perform", "start:process", "process:3", "done:process", "on_shutdown"]
    assert "isolated step 'slow_tail'" in (checkpoint(queue, job_id).interrupted_by or "")
    StepsJob.calls = []
    row = await run_job(job_id)
    assert row.status == JobStatus.COMPLETED
    assert StepsJob.calls == ["on_resume", "perform", "start:slow_tail", "slow_tail", "done:slow_tail",
                              "on_shutdown", "on_complete"]
    assert logged(queue, "StepsJob") == ["process:1", "process:2", "process:3"]


async def test_interrupt_after_a_step(queue: JobQueue) -> None:
    StepsJob.calls = []
    job_id = await StepsJob.perform_later({})
    await run_job(job_id, interrupt=interrupt_after_step("prepare"))
    state = checkpoint(queue, job_id)
    assert state.steps["prepare"].finished and "process" not in state.steps
    assert "start:process" not in StepsJob.calls


async def test_checkpoint_policy_every_n_items(queue: JobQueue) -> None:
    job_id = await BatchedCheckpointsJob.perform_later({"count": 10})
    await run_job(job_id, interrupt=interrupt_after_items(7))
    state = checkpoint(queue, job_id)
    assert state.steps["iterate"].cursor == 7  # always written at interruption
    assert state.saves == 3  # after items 3 and 6, then at the interruption after 7
    assert logged(queue, "BatchedCheckpointsJob") == [str(n) for n in range(1, 8)]


async def test_progress_is_visible_in_status(queue: JobQueue) -> None:
    job_id = await CountingIterationJob.perform_later({"count": 10})
    await run_job(job_id, interrupt=interrupt_after_items(4))
    summary = checkpoint(queue, job_id).summary()
    assert summary == {"step": "iterate", "cursor": 4, "done": 4, "total": None, "resumptions": 1,
                       "finished_steps": []}
    queue.store.claim("another-worker", (), 1, queue.clock.now(), queue.clock.now(), job_id=job_id)  # running now
    status = await queue.get_status()
    assert status.progress == {job_id: summary}


async def test_perform_now_runs_a_resumable_job_inline(queue: JobQueue) -> None:
    await CountingIterationJob.perform_now({"count": 5})
    assert logged(queue, "CountingIterationJob") == ["1", "2", "3", "4", "5"]


async def test_reset_orders_makes_the_demo_repeatable(queue: JobQueue) -> None:
    await run_job(await ProcessOrdersJob.perform_later({}))
    assert reset_orders(queue.database) == 100
    assert logged(queue, "ProcessOrdersJob") == []
    create_tables(queue.database)  # idempotent


def test_jobs_show_and_status_print_the_checkpoint(queue: JobQueue, database_url: str) -> None:
    import json

    import anyio

    from __tests__.test_cli import run_cli

    job_id = CountingIterationJob.perform_later_sync({"count": 10})
    anyio.run(lambda: run_job(job_id, interrupt=interrupt_after_items(4)))
    shown = run_cli(database_url, "jobs", "show", str(job_id), "--json", JOBQUEUE_JOBS_MODULE="main.jobs")
    progress = json.loads(shown.stdout)["progress"]
    assert (progress["step"], progress["cursor"], progress["done"], progress["resumptions"]) == ("iterate", 4, 4, 1)
    table = run_cli(database_url, "jobs", "show", str(job_id), JOBQUEUE_JOBS_MODULE="main.jobs")
    assert "iterate 4/? (cursor 4), resumed 1x" in table.stdout


async def test_retrying_a_failed_resumable_job_resumes_from_its_checkpoint(queue: JobQueue) -> None:
    job_id = await TooManyRunsJob.perform_later({"count": 50, "item_delay": 0.02})
    await queue.run(burst=True)
    first = logged(queue, "TooManyRunsJob")
    assert queue.store.get(job_id).status == JobStatus.FAILED and 0 < len(first) < 50
    await queue.retry_job(job_id)
    row = await run_job(job_id)
    again = logged(queue, "TooManyRunsJob")
    assert again[: len(first)] == first and len(again) > len(first)  # continued after the checkpoint
    assert len(again) == len(set(again))
    assert row.status == JobStatus.FAILED  # the resumption count is kept: max_resumptions stops it again


async def test_on_shutdown_is_called_when_an_error_resumes_the_job(queue: JobQueue) -> None:
    seen: list[str] = []

    async def record(self: Any, reason: str) -> None:
        seen.append(reason)

    ResumingOnErrorJob.on_shutdown = record  # type: ignore[method-assign]
    try:
        await run_job(await ResumingOnErrorJob.perform_later({"count": 5, "fail_at": 3}))
    finally:
        del ResumingOnErrorJob.on_shutdown
    assert seen == ["error after advancing: RuntimeError: item 3 failed"]
