"""Batches on both engines: callbacks run once, with the batch's counts, also when its last jobs end together on
different workers; a retry opens a batch again; a workflow step fans out to a batch and the next step gets its
results."""

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func
from sqlmodel import select

from __tests__.conftest import QueueFactory, run_cli, wait_for
from __tests__.support.batch_jobs import (
    JOBS,
    WORKFLOWS,
    BatchCallbackJob,
    SquareJob,
    SquaresAtOnce,
    SumOfSquares,
)
from __tests__.test_dashboard import client
from main.base.jobs import JobRequest
from main.db.entities import BatchRow, BatchStatus, Job, JobStatus, RunStatus, WorkflowRun
from main.db.store import JobFilter
from main.errors import InvalidJobStateError, JobNotFoundError, JobRequestError, PayloadValidationError
from main.events import Event
from main.services.job_queue import JobQueue
from main.web.dashboard import dashboard_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def queue(make_queue: QueueFactory) -> JobQueue:
    return make_queue(jobs=JOBS, workflows=WORKFLOWS, concurrency=8)


def squares(path: Path, count: int, fail: tuple[int, ...] = (), end_at: float = 0.0) -> list[JobRequest]:
    return [JobRequest(SquareJob, {"path": str(path), "n": n, "fail": n in fail, "end_at": end_at})
            for n in range(count)]


def callback(path: Path, label: str) -> JobRequest:
    return JobRequest(BatchCallbackJob, {"path": str(path), "label": label})


def callbacks_written(path: Path) -> list[str]:
    """The callback lines: 'callback <label> <batch> <status> <total> <completed> <failed> <cancelled>'."""
    return [line for line in path.read_text().splitlines() if line.startswith("callback")] if path.exists() else []


def batch_of(queue: JobQueue, batch_id: int) -> BatchRow:
    return queue.store.batch(batch_id)[0]


def run_status(queue: JobQueue, run_id: int) -> RunStatus:
    with queue.database.read() as session:
        return RunStatus(session.get_one(WorkflowRun, run_id).status)


def steps_of(queue: JobQueue, run_id: int) -> dict[str, Job]:
    with queue.database.read() as session:
        found = session.exec(select(Job).where(Job.workflow_run_id == run_id)).all()
    return {job.workflow_step: job for job in found}  # type: ignore[misc]


async def test_a_batch_runs_its_callbacks_once_with_its_counts(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "log"
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    queue.subscribe("batch.*", record)
    batch_id = await queue.start_batch(squares(path, 5, fail=(3,)), on_success=callback(path, "success"),
                                       on_failure=callback(path, "failure"), on_complete=callback(path, "complete"))
    assert batch_of(queue, batch_id).status == BatchStatus.RUNNING
    await queue.run(burst=True)
    assert sorted(callbacks_written(path)) == [f"callback complete {batch_id} failed 5 4 1 0",
                                               f"callback failure {batch_id} failed 5 4 1 0"]
    batch = batch_of(queue, batch_id)
    assert (batch.status, batch.completed, batch.failed, batch.cancelled) == (BatchStatus.FAILED, 4, 1, 0)
    assert [(e.type.value, e.batch_id) for e in seen] == [("batch.started", batch_id), ("batch.settled", batch_id)]
    assert (seen[0].jobs, seen[1].status, seen[1].callbacks) == (5, "failed", 2)


async def test_callbacks_run_once_when_the_last_jobs_end_together_on_different_workers(
        make_queue: QueueFactory, tmp_path: Path) -> None:
    workers = [make_queue(jobs=JOBS, workflows=WORKFLOWS, concurrency=4) for _ in range(3)]
    end_at = time.time() + 1.5  # every job ends at this instant, on whichever worker holds it
    batches = {}
    for n in range(8):
        path = tmp_path / f"batch{n}.log"
        batches[path] = await workers[0].start_batch(squares(path, 3, end_at=end_at),
                                                     on_complete=callback(path, "complete"))
    async with anyio.create_task_group() as tg:
        for worker in workers:
            await tg.start(worker.run)
        with anyio.fail_after(30):
            while not all(callbacks_written(path) for path in batches):
                await anyio.sleep(0.02)
        await anyio.sleep(0.3)  # time enough for a second callback, were one written
        for worker in workers:
            worker.stop()
    for path, batch_id in batches.items():
        assert callbacks_written(path) == [f"callback complete {batch_id} succeeded 3 3 0 0"]
    with workers[0].database.read() as session:
        ran_by = set(session.exec(select(Job.worker_id).where(Job.type == "SquareJob")))
    assert len(ran_by) >= 2  # the batches' jobs were shared out


@pytest.mark.slow
def test_callbacks_run_once_under_three_worker_processes(queue: JobQueue, start_worker, database_url: str,
                                                         tmp_path: Path) -> None:
    for _ in range(3):
        start_worker(database_url, "--concurrency", "4", JOBQUEUE_JOBS_MODULE="__tests__.support.batch_jobs")
    end_at = time.time() + 3
    batches = {tmp_path / f"batch{n}.log": queue.start_batch_sync(
        squares(tmp_path / f"batch{n}.log", 4, fail=(n % 3,), end_at=end_at),
        on_success=callback(tmp_path / f"batch{n}.log", "success"),
        on_failure=callback(tmp_path / f"batch{n}.log", "failure")) for n in range(10)}
    wait_for(lambda: all(callbacks_written(path) for path in batches), timeout=60)
    time.sleep(0.5)
    for path, batch_id in batches.items():
        assert callbacks_written(path) == [f"callback failure {batch_id} failed 4 3 1 0"]


async def test_an_empty_batch_settles_at_once(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "log"
    stamped = JobRequest(BatchCallbackJob, {"path": str(path), "label": "success", "at": datetime.now(UTC)})
    batch_id = await queue.start_batch([], on_success=stamped)
    assert batch_of(queue, batch_id).status == BatchStatus.SUCCEEDED
    await queue.run(burst=True)
    assert callbacks_written(path) == [f"callback success {batch_id} succeeded 0 0 0 0"]


async def test_retrying_a_failed_job_opens_its_batch_again(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "log"
    batch_id = await queue.start_batch(squares(path, 3, fail=(1,)), on_success=callback(path, "success"),
                                       on_complete=callback(path, "complete"))
    await queue.run(burst=True)
    assert callbacks_written(path) == [f"callback complete {batch_id} failed 3 2 1 0"]
    (tmp_path / "log.fixed1").touch()
    [failed] = [job for job in queue.store.batch(batch_id)[1] if job.status == JobStatus.FAILED]
    await queue.retry_job(failed.id or 0)
    assert batch_of(queue, batch_id).status == BatchStatus.RUNNING
    await queue.run(burst=True)
    assert sorted(callbacks_written(path)[1:]) == [f"callback complete {batch_id} succeeded 3 3 0 0",
                                                   f"callback success {batch_id} succeeded 3 3 0 0"]


async def test_cancelling_a_batchs_jobs_settles_it(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "log"
    batch_id = await queue.start_batch(squares(path, 4), on_failure=callback(path, "failure"))
    await queue.cancel_job(queue.store.batch(batch_id)[1][0].id or 0)  # one by hand...
    assert batch_of(queue, batch_id).status == BatchStatus.RUNNING
    assert queue.cancel_jobs_sync(JobFilter(statuses=(JobStatus.PENDING,), types=("SquareJob",))) == (3, 0)  # the rest
    assert batch_of(queue, batch_id).status == BatchStatus.FAILED
    await queue.run(burst=True)
    assert callbacks_written(path) == [f"callback failure {batch_id} failed 4 0 0 4"]


async def test_a_batch_is_written_in_the_application_transaction(queue: JobQueue, tmp_path: Path) -> None:
    with queue.database.transaction() as session:
        kept = await queue.start_batch(squares(tmp_path / "log", 2), session=session)
    with pytest.raises(RuntimeError), queue.database.transaction() as session:
        dropped = await queue.start_batch(squares(tmp_path / "log", 3), session=session)
        raise RuntimeError("the application's transaction fails")
    assert len(queue.store.batch(kept)[1]) == 2
    with pytest.raises(JobNotFoundError, match=f"no batch {dropped}"):
        queue.store.batch(dropped)
    assert queue.store.count_matching(JobFilter(statuses=(JobStatus.PENDING,))) == 2


async def test_bad_batches_are_refused_and_write_nothing(queue: JobQueue, tmp_path: Path) -> None:
    queue.store.ensure_schema()
    with pytest.raises(PayloadValidationError, match="label: Field required"):
        await queue.start_batch(squares(tmp_path / "log", 2),
                                on_complete=JobRequest(BatchCallbackJob, {"path": "x"}))
    with pytest.raises(JobRequestError, match="without a 'batch' key"):
        await queue.start_batch([], on_complete=JobRequest(BatchCallbackJob, {"path": "x", "label": "l", "batch": 1}))
    with pytest.raises(JobRequestError, match="on_success must be a JobRequest"):
        await queue.start_batch([], on_success=BatchCallbackJob)  # type: ignore[arg-type]
    with pytest.raises(PayloadValidationError, match="SquareJob"):
        await queue.start_batch([JobRequest(SquareJob, {"n": "two"})])
    with queue.database.read() as session:
        assert session.exec(select(func.count()).select_from(BatchRow)).one() == 0
        assert session.exec(select(func.count()).select_from(Job)).one() == 0


async def test_a_step_fans_out_to_a_batch_and_the_next_step_gets_its_results(queue: JobQueue,
                                                                            tmp_path: Path) -> None:
    path = tmp_path / "log"
    run_id = await SumOfSquares.start({"path": str(path), "count": 4})
    await queue.run(burst=True)
    assert run_status(queue, run_id) == RunStatus.COMPLETED
    steps = steps_of(queue, run_id)
    assert [item["square"] for item in steps["square"].result] == [0, 1, 4, 9]  # in the order given
    assert steps["total"].result == 14 and "total 14" in path.read_text()
    square_lines = [line for line in path.read_text().splitlines() if line.startswith("square")]
    assert len(square_lines) == 4  # each job of the batch ran once; the step's own job never ran


async def test_a_failed_job_of_a_fanned_out_step_fails_the_run_and_its_retry_completes_it(
        queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "log"
    run_id = await SumOfSquares.start({"path": str(path), "count": 3, "fail": [2]})
    await queue.run(burst=True)
    assert run_status(queue, run_id) == RunStatus.FAILED
    steps = steps_of(queue, run_id)
    assert steps["square"].status == JobStatus.FAILED and "1 failed and 0 cancelled of the 3 jobs" in (
        steps["square"].last_error or "")
    assert steps["total"].status == JobStatus.CANCELLED
    with pytest.raises(InvalidJobStateError, match="ran as batch"):
        await queue.retry_job(steps["square"].id or 0)
    assert queue.retry_jobs_sync(JobFilter(statuses=(JobStatus.FAILED,), types=("SquareJob",))) == 1  # the job only
    (tmp_path / "log.fixed2").touch()
    await queue.run(burst=True)
    assert run_status(queue, run_id) == RunStatus.COMPLETED
    assert steps_of(queue, run_id)["total"].result == 5


async def test_a_first_step_fans_out_with_the_run_and_an_empty_one_completes_at_once(queue: JobQueue,
                                                                                    tmp_path: Path) -> None:
    run_id = await SquaresAtOnce.start({"path": str(tmp_path / "log"), "count": 2})
    assert queue.store.count_matching(JobFilter(statuses=(JobStatus.PENDING,), types=("SquareJob",))) == 2
    await queue.run(burst=True)
    assert run_status(queue, run_id) == RunStatus.COMPLETED
    empty = await SumOfSquares.start({"path": str(tmp_path / "empty"), "count": 0})
    await queue.run(burst=True)
    assert run_status(queue, empty) == RunStatus.COMPLETED
    assert steps_of(queue, empty)["square"].result == [] and steps_of(queue, empty)["total"].result == 0


async def test_cancelling_a_run_cancels_the_jobs_of_its_fanned_out_step(queue: JobQueue, tmp_path: Path) -> None:
    run_id = await SquaresAtOnce.start({"path": str(tmp_path / "log"), "count": 3})
    assert await queue.cancel_workflow(run_id) == (4, 0)  # the step and its batch's three jobs
    [batch_id] = {job.batch_id for job in queue.store.list_jobs([JobStatus.CANCELLED]) if job.batch_id}
    assert batch_of(queue, batch_id).status == BatchStatus.FAILED
    assert run_status(queue, run_id) == RunStatus.CANCELLED
    await queue.retry_job(queue.store.batch(batch_id)[1][0].id or 0)  # a job of it runs again; the run stays cancelled
    assert run_status(queue, run_id) == RunStatus.CANCELLED
    assert steps_of(queue, run_id)["square"].status == JobStatus.CANCELLED


async def test_cleanup_keeps_the_jobs_of_a_running_batch(queue: JobQueue, tmp_path: Path) -> None:
    path = tmp_path / "log"
    batch_id = await queue.start_batch(squares(path, 2), on_complete=callback(path, "complete"))
    first = queue.store.batch(batch_id)[1][0].id or 0
    await queue.cancel_job(first)
    assert queue.cleanup_sync(older_than=timedelta(0)) == 0  # it is what the batch counts
    await queue.run(burst=True)
    assert callbacks_written(path) == [f"callback complete {batch_id} failed 2 1 0 1"]
    assert queue.cleanup_sync(older_than=timedelta(0)) == 3  # settled: its jobs and the callback go
    with pytest.raises(JobNotFoundError):
        queue.store.batch(batch_id)


async def test_the_cli_and_the_api_show_a_batch(queue: JobQueue, database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "log"
    batch_id = await queue.start_batch(squares(path, 3, fail=(0,)), on_failure=callback(path, "failure"))
    await queue.run(burst=True)

    def jobqueue(*args: str) -> str:
        return run_cli(database_url, "__tests__.support.batch_jobs", "batches", *args)

    shown = json.loads(jobqueue("show", str(batch_id), "--json"))
    assert (shown["status"], shown["jobs_by_status"], shown["callbacks"]) == (
        "failed", {"failed": 1, "completed": 2}, [{"on": "failure", "type": "BatchCallbackJob"}])
    table = jobqueue("show", str(batch_id))
    assert f"batch {batch_id} · failed" in table and "0 cannot be squared today" in table
    other = await queue.start_batch(squares(path, 2))  # still running
    [listed] = json.loads(jobqueue("list", "--status", "failed", "--json"))
    assert (listed["id"], listed["jobs_by_status"]) == (batch_id, shown["jobs_by_status"])
    assert f"{other} " in jobqueue("list") and "2 pending" in jobqueue("list", "--status", "running")
    async with client(dashboard_app(queue)) as http:
        assert (await http.get(f"/api/batches/{batch_id}")).json()["jobs_by_status"] == shown["jobs_by_status"]
        assert [b["id"] for b in (await http.get("/api/batches")).json()] == [other, batch_id]
        assert (await http.get("/api/batches", params={"status": "lost"})).status_code == 400
        assert (await http.get("/api/batches/999999")).status_code == 404
