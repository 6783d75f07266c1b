"""Pausing a queue: no worker claims from it (within a poll interval), resumable jobs running in it checkpoint
at their next item and go back to pending, and resuming it lets everything run; on both engines, from the CLI
and from another process."""

import json
import signal
import time
from pathlib import Path

import pytest

from __tests__.conftest import QueueFactory, wait_for
from __tests__.support.continuation_jobs import CountingIterationJob
from __tests__.support.jobs import JOBS, NoopJob
from __tests__.test_cli import run_cli
from __tests__.test_continuation import logged
from __tests__.test_worker import eventually, running, status_of
from main.base.jobs import JobRequest
from main.base.jobs.continuation import checkpoint_summary
from main.cli.output import status_as_dict
from main.db.entities import JobStatus
from main.demo.seed import create_tables
from main.errors import JobRequestError
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


async def test_a_paused_queue_is_not_claimed_and_resuming_runs_it(queue: JobQueue) -> None:
    [paused, other] = await queue.enqueue_many([JobRequest(NoopJob, {"n": 1}, queue="reports"),
                                                JobRequest(NoopJob, {"n": 2})])
    await queue.pause_queue("reports")
    await queue.pause_queue("reports")  # pausing twice is harmless
    await queue.run(burst=True)
    assert (status_of(queue, paused), status_of(queue, other)) == (JobStatus.PENDING, JobStatus.COMPLETED)
    [reports] = [q for q in await queue.list_queues() if q.name == "reports"]
    assert reports.paused and reports.counts["pending"] == 1
    status = await queue.get_status()
    assert list(status.paused_queues) == ["reports"]
    assert status_as_dict(status)["paused_queues"] == {"reports": reports.paused_at.isoformat()}  # type: ignore[union-attr]
    await queue.resume_queue("reports")
    await queue.run(burst=True)
    assert status_of(queue, paused) == JobStatus.COMPLETED
    assert not any(q.paused for q in await queue.list_queues()) and not (await queue.get_status()).paused_queues


async def test_a_queue_can_be_paused_before_it_has_jobs_and_bad_names_are_refused(queue: JobQueue) -> None:
    await queue.pause_queue("later")
    assert [(q.name, q.paused, sum(q.counts.values())) for q in await queue.list_queues()] == [("later", True, 0)]
    with pytest.raises(JobRequestError, match="queue"):
        await queue.pause_queue("no spaces allowed")


async def test_resumable_jobs_running_in_a_paused_queue_checkpoint_and_wait(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[*JOBS, CountingIterationJob])
    create_tables(queue.database)
    job_id = await CountingIterationJob.perform_later({"count": 40, "item_delay": 0.02})
    async with running(queue):
        await eventually(lambda: len(logged(queue, "CountingIterationJob")) >= 5)
        await queue.pause_queue("default")
        await eventually(lambda: status_of(queue, job_id) == JobStatus.PENDING, timeout=5)
        done = len(logged(queue, "CountingIterationJob"))
        assert 5 <= done < 40 and checkpoint_summary(queue.store.get(job_id).checkpoint)["cursor"] == done
        await queue.resume_queue("default")
        await eventually(lambda: status_of(queue, job_id) == JobStatus.COMPLETED, timeout=10)
        queue.stop()
    assert logged(queue, "CountingIterationJob") == [str(n) for n in range(1, 41)]  # each item once
    assert queue.store.get(job_id).attempts == 1


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # a fleet's case; the claim is one on both
def test_pausing_from_the_cli_stops_a_worker_process_within_a_poll_interval(
    queue: JobQueue, start_worker, database_url: str, tmp_path: Path,
) -> None:
    worker = start_worker(database_url, JOBQUEUE_POLL_INTERVAL="0.2")
    first = NoopJob.perform_later_sync({"n": 1})
    wait_for(lambda: status_of(queue, first) == JobStatus.COMPLETED)
    assert run_cli(database_url, "queues", "pause", "default").stdout.strip() == "paused queue 'default'"
    held = NoopJob.perform_later_sync({"n": 2})
    time.sleep(0.8)  # four poll intervals
    assert status_of(queue, held) == JobStatus.PENDING
    listed = json.loads(run_cli(database_url, "queues", "--json").stdout)
    assert (listed[0]["name"], listed[0]["paused"], listed[0]["counts"]["pending"]) == ("default", True, 1)
    assert run_cli(database_url, "queues", "resume", "default").stdout.strip() == "resumed queue 'default'"
    wait_for(lambda: status_of(queue, held) == JobStatus.COMPLETED, timeout=5)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
