"""Retry and cancel many jobs at once, chosen by status, type and queue: one statement, a count, and a
confirmation that scripts give with --yes; on both engines, from the CLI."""

import json

import pytest

from __tests__.support.jobs import NoopJob, RejectingJob
from __tests__.test_cli import run_cli
from __tests__.test_cli_hardening import assert_one_error_line
from main.base.jobs import JobRequest
from main.db.entities import JobStatus
from main.db.store import JobFilter
from main.errors import InvalidJobStateError, JobRequestError
from main.services.job_queue import JobQueue


def statuses(queue: JobQueue, ids: list[int]) -> list[JobStatus]:
    return [queue.store.get(job_id).status for job_id in ids]


@pytest.mark.anyio
async def test_retry_by_status_type_and_queue_touches_only_the_jobs_chosen(queue: JobQueue) -> None:
    failed_here = await queue.enqueue_many([JobRequest(RejectingJob, {}, queue="reports")] * 3)
    failed_elsewhere = await queue.enqueue_many([JobRequest(RejectingJob, {})] * 2)
    done = await queue.enqueue_many([JobRequest(NoopJob, {"n": 1}, queue="reports")])
    await queue.run(burst=True)
    which = JobFilter((JobStatus.FAILED,), ("RejectingJob",), ("reports",))
    assert queue.store.count_matching(which) == 3
    assert queue.retry_jobs_sync(which) == 3
    assert statuses(queue, failed_here) == [JobStatus.PENDING] * 3
    assert queue.store.get(failed_here[0]).attempts == 0  # a fresh retry budget
    assert statuses(queue, [*failed_elsewhere, *done]) == [JobStatus.FAILED] * 2 + [JobStatus.COMPLETED]
    with pytest.raises(InvalidJobStateError, match="cannot retry completed jobs; only failed or cancelled"):
        queue.retry_jobs_sync(JobFilter((JobStatus.COMPLETED,)))
    with pytest.raises(JobRequestError, match="say which jobs to cancel: --status pending or running"):
        queue.cancel_jobs_sync(JobFilter(()))


@pytest.mark.anyio
async def test_cancel_by_filter_cancels_pending_jobs_and_asks_running_ones_to_stop(queue: JobQueue) -> None:
    pending = await queue.enqueue_many([JobRequest(NoopJob, {"n": n}, queue="mail") for n in range(4)])
    other = await queue.enqueue_many([JobRequest(NoopJob, {"n": 9})])
    [running] = queue.store.claim("another-worker", ("mail",), 1, queue.now(), queue.now())
    assert queue.cancel_jobs_sync(JobFilter((JobStatus.PENDING, JobStatus.RUNNING), queues=("mail",))) == (3, 1)
    assert queue.store.get(running.id).cancel_requested
    assert sorted(statuses(queue, pending)) == sorted([JobStatus.CANCELLED] * 3 + [JobStatus.RUNNING])
    assert statuses(queue, other) == [JobStatus.PENDING]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the store's part runs on both above
def test_the_cli_counts_asks_and_acts(queue: JobQueue, database_url: str) -> None:
    ids = NoopJob.perform_bulk_sync([{"n": n} for n in range(5)])
    unasked = run_cli(database_url, "jobs", "cancel", "--status", "pending")  # no terminal to ask on
    assert_one_error_line(unasked.returncode, unasked.stderr, "5 jobs match; add --yes to cancel them")
    assert statuses(queue, ids) == [JobStatus.PENDING] * 5
    done = run_cli(database_url, "jobs", "cancel", "--status", "pending", "--type", "NoopJob", "--yes", "--json")
    assert json.loads(done.stdout) == {"matched": 5, "cancelled": 5, "asked_to_stop": 0}
    retried = run_cli(database_url, "jobs", "retry", "--status", "cancelled", "--yes")
    assert retried.stdout.strip() == "5 jobs are pending again"
    assert statuses(queue, ids) == [JobStatus.PENDING] * 5
    nothing = run_cli(database_url, "jobs", "retry", "--status", "failed", "--json")
    assert json.loads(nothing.stdout) == {"matched": 0}
    both = run_cli(database_url, "jobs", "retry", str(ids[0]), "--status", "failed")
    assert_one_error_line(both.returncode, both.stderr, "give either a job ID or --status/--type/--queue")
