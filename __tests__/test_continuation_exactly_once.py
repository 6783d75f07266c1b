"""Resumable jobs keep exactly-once in every case, on SQLite and PostgreSQL: typed keyset cursors in both sort
directions, checkpoint writes that fail (in errors, interruptions, shutdown and lease loss), the definition
and cursor errors that fail at once, with a message naming the job, instead of being retried; and a property
test over random data, batch sizes, policies, interruption points and failing writes."""

from collections.abc import Sequence
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from __tests__.conftest import QueueFactory
from __tests__.support import continuation_jobs, cursor_jobs
from __tests__.support.cursor_jobs import (
    KEY_COLUMNS,
    TYPED_CURSORS,
    HooksJob,
    NothingToDoJob,
    OpaqueCursorJob,
    OwnOrderByJob,
    SwallowingJob,
    TypedCursorStepsJob,
    Walk,
    WalkBatchedJob,
    WalkEveryItemJob,
    WalkRarelyJob,
    create_keyed_rows,
    expected_order,
    keyed_rows,
)
from __tests__.test_continuation import logged
from main.base.jobs.continuation import Checkpoint, IterationJob
from main.base.jobs.continuation.testing import interrupt_after_items, run_job
from main.clock import FrozenClock
from main.db.entities import Job, JobStatus
from main.db.store import jobs_table
from main.demo.seed import create_tables
from main.errors import JobDefinitionError
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


@pytest.fixture
def queue(make_queue: QueueFactory, clock: FrozenClock) -> JobQueue:
    queue = make_queue(clock=clock, jobs=[*cursor_jobs.JOBS, *continuation_jobs.JOBS])
    queue.store.ensure_schema()
    create_tables(queue.database)
    return queue


async def run_until_settled(queue: JobQueue, job_id: int, *, every: int | None = None,
                            plan: Sequence[int] = (), runs: int = 200) -> Job:
    """Run the job again and again until it completes or fails: interrupted after the items `plan` lists for
    its first runs, then after `every` items (if given); a retry's backoff is skipped on the frozen clock."""
    plan = list(plan)
    for _ in range(runs):
        row = queue.store.get(job_id)
        if row.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            return row
        queue.clock.advance(max(0.0, (row.run_at - queue.clock.now()).total_seconds()))  # type: ignore[attr-defined]
        items = plan.pop(0) if plan else every
        await run_job(job_id, interrupt=interrupt_after_items(items) if items else None)
    raise AssertionError(f"job {job_id} did not settle in {runs} runs")


def walk_table(queue: JobQueue, count: int, column: str = "n") -> tuple[list[Any], list[int]]:
    """A fresh keyed_rows table of `count` rows, the walk jobs' class state reset; the rows, and their ids in
    the order an ascending walk by `column` visits them."""
    rows = keyed_rows(count)
    create_keyed_rows(queue.database, rows)
    cursor_jobs.WalkKeyedRowsJob.failed_once, cursor_jobs.WalkKeyedRowsJob.iterated = set(), 0
    return rows, expected_order(rows, Walk(column=column))


def walked(queue: JobQueue, job_type: str) -> list[int]:
    return [int(key) for key in logged(queue, job_type)]


# -- 1. keyset cursors round-trip with their column's type --------------------------------------------------

@pytest.mark.parametrize("column", KEY_COLUMNS)
async def test_a_keyset_over_any_column_type_resumes_exactly_after_its_cursor(queue: JobQueue, column: str) -> None:
    rows = keyed_rows(23)
    create_keyed_rows(queue.database, rows)
    for order in ("asc", "desc", "mixed"):
        payload = Walk(column=column, order=order, batch_size=4)
        job_id = await WalkEveryItemJob.perform_later(payload)
        row = await run_until_settled(queue, job_id, every=3)  # interrupted after every third row
        assert row.status == JobStatus.COMPLETED, row.last_error
        assert walked(queue, "WalkKeyedRowsJob") == expected_order(rows, payload), f"order {order}"
        with queue.database.transaction() as session:
            session.execute(sa.text("DELETE FROM processing_log"))


async def test_a_cursor_of_every_supported_type_comes_back_exactly(queue: JobQueue) -> None:
    TypedCursorStepsJob.seen = []
    job_id = await TypedCursorStepsJob.perform_later({})
    row = await run_until_settled(queue, job_id, every=1)
    assert row.status == JobStatus.COMPLETED, row.last_error
    resumed_from = TypedCursorStepsJob.seen[1:]  # the first run starts from None
    assert resumed_from == TYPED_CURSORS
    assert [type(value) for value in resumed_from] == [type(value) for value in TYPED_CURSORS]
    assert type(resumed_from[9][0]) is type(TYPED_CURSORS[9][0])  # inside a tuple, too


async def test_a_checkpoint_of_an_earlier_release_with_text_datetimes_still_resumes(queue: JobQueue) -> None:
    rows = keyed_rows(10)
    create_keyed_rows(queue.database, rows)
    payload = Walk(column="at", order="asc")
    order = expected_order(rows, payload)
    third = next(row for row in rows if row.id == order[2])
    job_id = await WalkEveryItemJob.perform_later(payload)
    stored_as_text = {"steps": {"iterate": {"cursor": [third.at.isoformat(), third.id], "done": 3}},
                      "current": "iterate", "runs": 1}
    with queue.database.transaction() as session:
        session.execute(sa.update(jobs_table).where(jobs_table.c.id == job_id).values(checkpoint=stored_as_text))
    row = await run_until_settled(queue, job_id)
    assert row.status == JobStatus.COMPLETED, row.last_error
    assert walked(queue, "WalkKeyedRowsJob") == order[3:]


# -- 2. checkpoint and writes commit together or not at all -------------------------------------------------

@pytest.mark.parametrize("job_class", [WalkEveryItemJob, WalkBatchedJob])
async def test_a_write_that_fails_at_checkpoint_time_is_retried_not_lost(
    queue: JobQueue, job_class: type[IterationJob[Any]]
) -> None:
    rows, order = walk_table(queue, 12)
    payload = Walk(column="n", fail_writes=[order[3], order[8]])
    job_id = await job_class.perform_later(payload)
    first = await run_job(job_id)
    assert (first.status, first.last_error) == (JobStatus.PENDING, f"RuntimeError: write for row {order[3]} failed")
    committed = Checkpoint.model_validate(first.checkpoint).steps["iterate"]
    assert committed.done == 3 and walked(queue, job_class.options.name) == order[:3]  # cursor and writes agree
    row = await run_until_settled(queue, job_id)
    assert row.status == JobStatus.COMPLETED, row.last_error
    assert walked(queue, job_class.options.name) == order  # each row exactly once


async def test_a_write_that_fails_when_the_job_is_interrupted_is_retried_not_lost(queue: JobQueue) -> None:
    rows, order = walk_table(queue, 12)
    payload = Walk(column="n", fail_writes=[order[1]])
    job_id = await WalkBatchedJob.perform_later(payload)  # checkpoints every 3: the interruption writes items 1-2
    row = await run_job(job_id, interrupt=interrupt_after_items(2))
    assert (row.status, row.attempts) == (JobStatus.PENDING, 1)  # not a pause: a failed attempt, to retry
    assert row.last_error == f"RuntimeError: write for row {order[1]} failed"
    assert row.checkpoint is None and walked(queue, "WalkBatchedJob") == []  # neither cursor nor writes
    row = await run_until_settled(queue, job_id)
    assert row.status == JobStatus.COMPLETED, row.last_error
    assert walked(queue, "WalkBatchedJob") == order


async def test_a_write_that_fails_while_shutting_down_is_redone_on_resume(queue: JobQueue) -> None:
    rows, order = walk_table(queue, 30)
    payload = Walk(column="n", fail_writes=[order[0]], batch_size=2, item_delay=0.02)
    job_id = await WalkRarelyJob.perform_later(payload)  # no checkpoint before the shutdown's

    async with anyio.create_task_group() as tg:
        await queue.start(tg)
        while cursor_jobs.WalkKeyedRowsJob.iterated < 5:
            await anyio.sleep(0.005)
        queue.stop_now()  # cancels the job mid-item: it saves what it did, and that save fails
    row = queue.store.get(job_id)
    assert (row.status, row.attempts, row.checkpoint) == (JobStatus.PENDING, 0, None)  # released, nothing saved
    assert cursor_jobs.WalkKeyedRowsJob.failed_once == {order[0]} and walked(queue, "WalkRarelyJob") == []
    row = await run_until_settled(queue, job_id)
    assert row.status == JobStatus.COMPLETED, row.last_error
    assert walked(queue, "WalkRarelyJob") == order


async def test_after_a_lost_lease_the_job_never_writes_the_items_it_did_not_checkpoint(queue: JobQueue) -> None:
    rows, order = walk_table(queue, 9)
    job_id = await WalkBatchedJob.perform_later(Walk(column="n", steal_at=order[4]))
    row = await run_job(job_id)  # checkpoints after items 3 and 6; the job is taken over after item 5
    assert (row.status, row.worker_id) == (JobStatus.RUNNING, "another-worker")
    assert walked(queue, "WalkBatchedJob") == order[:3]  # items 4-5 were not checkpointed: not written
    with queue.database.transaction() as session:  # the other worker gives it back, as its own crash would
        session.execute(sa.update(jobs_table).where(jobs_table.c.id == job_id)
                        .values(status=JobStatus.PENDING, worker_id=None, payload=Walk(column="n").model_dump()))
    row = await run_until_settled(queue, job_id)
    assert row.status == JobStatus.COMPLETED
    assert walked(queue, "WalkBatchedJob") == order


async def test_job_code_that_swallows_a_failed_checkpoint_cannot_save_past_it(queue: JobQueue) -> None:
    SwallowingJob.failed_once = False
    job_id = await SwallowingJob.perform_later({"count": 6, "fail_write_at": 2})
    first = await run_job(job_id)
    assert first.status == JobStatus.PENDING and (first.last_error or "").startswith("CheckpointWriteError")
    assert Checkpoint.model_validate(first.checkpoint).steps["walk"].cursor == 1
    row = await run_until_settled(queue, job_id)
    assert row.status == JobStatus.COMPLETED
    assert logged(queue, "SwallowingJob") == ["1", "2", "3", "4", "5", "6"]


# -- 3-6, 8. errors that always recur fail at once, naming the job ------------------------------------------

@pytest.mark.parametrize("carries", ["order_by", "limit", "offset"])
async def test_a_select_with_its_own_order_by_or_limit_is_rejected(queue: JobQueue, carries: str) -> None:
    create_keyed_rows(queue.database, keyed_rows(3))
    row = await run_job(await OwnOrderByJob.perform_later({"carries": carries}))
    assert (row.status, row.attempts) == (JobStatus.FAILED, 1)  # max_retries=3, none used
    assert row.last_error and row.last_error.startswith("EnumeratorError: job 'OwnOrderByJob': enumerate.records()")
    assert ("ORDER BY" if carries == "order_by" else "LIMIT or OFFSET") in row.last_error


def test_an_iteration_job_that_overrides_perform_is_rejected_at_definition() -> None:
    with pytest.raises(JobDefinitionError, match="OverridesPerform overrides perform, which an IterationJob runs"):
        class OverridesPerform(IterationJob[continuation_jobs.Items]):
            def build_enumerator(self, payload: Any, cursor: Any) -> Any:
                return []

            async def each_iteration(self, item: Any, payload: Any) -> None:
                pass

            async def perform(self, payload: Any) -> None:
                pass


async def test_build_enumerator_returning_none_completes_the_job(queue: JobQueue) -> None:
    row = await run_job(await NothingToDoJob.perform_later({}))
    assert (row.status, row.attempts, row.last_error) == (JobStatus.COMPLETED, 1, None)


async def test_a_cursor_that_cannot_be_stored_fails_at_once_naming_job_step_and_type(queue: JobQueue) -> None:
    row = await run_job(await OpaqueCursorJob.perform_later({}))
    assert (row.status, row.attempts) == (JobStatus.FAILED, 1)  # max_retries=3, none used
    assert row.last_error and row.last_error.startswith(
        "CursorError: job 'OpaqueCursorJob', step 'iterate': the cursor <")
    assert "holds a value of type Opaque" in row.last_error


# -- 7, 9. hooks: on_start once per job, on_shutdown at the end of every run --------------------------------

async def test_on_start_runs_once_per_job_even_when_the_first_attempt_fails_before_any_item(
    queue: JobQueue, clock: FrozenClock
) -> None:
    HooksJob.calls = []
    job_id = await HooksJob.perform_later({"count": 3, "fail_at": 1})
    row = await run_until_settled(queue, job_id)
    assert (row.status, row.attempts) == (JobStatus.COMPLETED, 2)
    assert HooksJob.calls == ["on_start",  # attempt 1 fails at item 1: no on_shutdown for a failed run
                              "on_resume", "item:1", "item:2", "item:3", "on_shutdown:completed", "on_complete"]


async def test_on_shutdown_ends_every_run_that_completes_or_is_interrupted(queue: JobQueue) -> None:
    HooksJob.calls = []
    job_id = await HooksJob.perform_later({"count": 3})
    await run_job(job_id, interrupt=interrupt_after_items(2))
    await run_job(job_id)
    assert HooksJob.calls == ["on_start", "item:1", "item:2", "on_shutdown:interrupt requested",
                              "on_resume", "item:3", "on_shutdown:completed", "on_complete"]


async def test_perform_now_runs_the_hooks_of_one_complete_run(queue: JobQueue) -> None:
    HooksJob.calls = []
    await HooksJob.perform_now({"count": 2})
    assert HooksJob.calls == ["on_start", "item:1", "item:2", "on_shutdown:completed", "on_complete"]


# -- the property: any data, any interruptions, any failing writes: every row exactly once ------------------

WALKS = [WalkEveryItemJob, WalkBatchedJob, WalkRarelyJob]  # checkpoint every 1, 3 and 1,000 items


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(min_value=0, max_value=25),
    distinct=st.integers(min_value=1, max_value=6),
    column=st.sampled_from(KEY_COLUMNS),
    order=st.sampled_from(["asc", "desc", "mixed"]),
    batch_size=st.integers(min_value=1, max_value=8),
    job_class=st.sampled_from(WALKS),
    interruptions=st.lists(st.integers(min_value=1, max_value=10), max_size=6),
    failing=st.sets(st.integers(min_value=1, max_value=25), max_size=5),
)
async def test_property_every_row_is_processed_exactly_once(
    queue: JobQueue, count: int, distinct: int, column: str, order: str, batch_size: int,
    job_class: type[IterationJob[Any]], interruptions: list[int], failing: set[int],
) -> None:
    """Each example walks a fresh table through real runs: interrupted where hypothesis says, its writes
    failing where it says (each once, so the retry succeeds), until the job completes. The log's unique
    constraint fails a duplicate; the comparison catches a row never written."""
    rows = keyed_rows(count, distinct)
    create_keyed_rows(queue.database, rows)
    with queue.database.transaction() as session:
        session.execute(sa.text("DELETE FROM processing_log"))
    cursor_jobs.WalkKeyedRowsJob.failed_once = set()
    payload = Walk(column=column, order=order, batch_size=batch_size, fail_writes=sorted(failing))
    row = await run_until_settled(queue, await job_class.perform_later(payload), plan=interruptions)
    assert row.status == JobStatus.COMPLETED, row.last_error
    assert walked(queue, job_class.options.name) == expected_order(rows, payload)
