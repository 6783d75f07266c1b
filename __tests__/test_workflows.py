"""Workflow runs on both engines: steps start after their dependencies end, a diamond's join runs once when its
branches end together on different workers, a failure stops exactly what depends on it, and a retry goes on."""

import json
import os
import signal
from pathlib import Path

import anyio
import pytest
from sqlmodel import select

from __tests__.conftest import QueueFactory, run_cli, wait_for, wait_started
from __tests__.support.workflow_jobs import JOBS, WORKFLOWS, CheckoutWorkflow, ResumableWorkflow
from main.db.entities import Job, JobStatus, RunStatus, WorkflowRun
from main.db.store import JobFilter
from main.errors import InvalidJobStateError, JobNotFoundError, JobRegistrationError, PayloadValidationError
from main.events import Event
from main.services.job_queue import JobQueue

STEPS = ["validate", "charge", "inventory", "create_order", "confirm"]
DEPENDS_ON = {"validate": [], "charge": ["validate"], "inventory": ["charge"], "create_order": ["charge"],
              "confirm": ["inventory", "create_order"]}


def steps_of(queue: JobQueue, run_id: int) -> dict[str, Job]:
    with queue.database.read() as session:
        found = session.exec(select(Job).where(Job.workflow_run_id == run_id)).all()
    return {job.workflow_step: job for job in found}  # type: ignore[misc]


def run_status(queue: JobQueue, run_id: int) -> RunStatus:
    with queue.database.read() as session:
        return RunStatus(session.get_one(WorkflowRun, run_id).status)


def timeline(path: Path) -> dict[str, dict[str, list[float]]]:
    """step -> {"start": [times], "end": [times]} from the log the steps write."""
    found: dict[str, dict[str, list[float]]] = {}
    for line in path.read_text().splitlines():
        what, step, at, _ = line.split()
        found.setdefault(step, {"start": [], "end": []})[what].append(float(at))
    return found


def assert_in_dependency_order(path: Path) -> None:
    seen = timeline(path)
    for step, dependencies in DEPENDS_ON.items():
        assert len(seen[step]["end"]) == 1, f"{step} ended {len(seen[step]['end'])} times"
        for dependency in dependencies:
            assert min(seen[step]["start"]) >= max(seen[dependency]["end"]), f"{step} started before {dependency} ended"


async def settle(queue: JobQueue, run_id: int) -> None:
    """Work until the run has ended (a burst ends while a retry waits out its backoff: go again)."""
    with anyio.fail_after(30):
        while run_status(queue, run_id) == RunStatus.RUNNING:
            await queue.run(burst=True)
            await anyio.sleep(0.02)


async def failed_at_inventory(shop: JobQueue, tmp_path: Path) -> tuple[int, Path]:
    """A run whose inventory step fails for good (while the returned file exists), worked until it has ended."""
    broken = tmp_path / "broken"
    broken.touch()
    run_id = await CheckoutWorkflow.start({"path": str(tmp_path / "steps.log"), "broken": str(broken)})
    await settle(shop, run_id)
    return run_id, broken


@pytest.fixture
def shop(make_queue: QueueFactory) -> JobQueue:
    return make_queue(jobs=JOBS, workflows=WORKFLOWS, concurrency=5)


@pytest.mark.anyio
async def test_a_run_starts_each_step_after_its_dependencies_with_their_results(shop: JobQueue,
                                                                                tmp_path: Path) -> None:
    path = tmp_path / "steps.log"
    run_id = await CheckoutWorkflow.start({"path": str(path), "seconds": 0.02, "flaky": True})
    started = steps_of(shop, run_id)
    assert {name: job.status for name, job in started.items()} == {
        "validate": JobStatus.PENDING, **{name: JobStatus.BLOCKED for name in STEPS[1:]}}
    assert started["confirm"].waiting_for == 2
    await settle(shop, run_id)
    finished = steps_of(shop, run_id)
    assert {job.status for job in finished.values()} == {JobStatus.COMPLETED}
    assert finished["charge"].attempts == 2  # the flaky step retried on its own
    assert finished["confirm"].payload["seen"] == {"inventory": {"step": "inventory", "saw": ["charge"]},
                                                   "create_order": {"step": "create_order", "saw": ["charge"]}}
    assert run_status(shop, run_id) == RunStatus.COMPLETED
    assert_in_dependency_order(path)


@pytest.mark.anyio
async def test_a_diamond_join_runs_once_when_both_branches_end_together_on_different_workers(
        make_queue: QueueFactory, tmp_path: Path) -> None:
    workers = [make_queue(jobs=JOBS, workflows=WORKFLOWS, concurrency=5) for _ in range(2)]
    runs = []
    for n in range(6):
        path = tmp_path / f"run{n}.log"
        runs.append((path, await CheckoutWorkflow.start({"path": str(path), "seconds": 0.05})))
    async with anyio.create_task_group() as tg:
        for worker in workers:
            await tg.start(worker.run)
        await wait_for_async(lambda: all(run_status(workers[0], run_id) == RunStatus.COMPLETED for _, run_id in runs))
        for worker in workers:
            worker.stop()
    ran_by = set()
    for path, run_id in runs:
        assert_in_dependency_order(path)  # confirm (the join) ended exactly once
        ran_by |= {job.worker_id for job in steps_of(workers[0], run_id).values()}
    assert len(ran_by) == 2  # both workers ran steps


async def wait_for_async(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_a_failed_step_fails_the_run_and_stops_only_what_depends_on_it_and_retry_goes_on(
        shop: JobQueue, tmp_path: Path) -> None:
    path, broken = tmp_path / "steps.log", tmp_path / "inventory-is-broken"
    broken.touch()
    run_id = await CheckoutWorkflow.start({"path": str(path), "broken": str(broken)})
    await settle(shop, run_id)
    steps = steps_of(shop, run_id)
    assert {name: job.status for name, job in steps.items()} == {
        "validate": JobStatus.COMPLETED, "charge": JobStatus.COMPLETED, "inventory": JobStatus.FAILED,
        "create_order": JobStatus.COMPLETED,  # the other branch was not stopped
        "confirm": JobStatus.CANCELLED}
    assert "out of stock" in (steps["inventory"].last_error or "")
    assert "a step it waits for failed" in (steps["confirm"].last_error or "")
    assert run_status(shop, run_id) == RunStatus.FAILED
    assert "confirm" not in timeline(path)

    broken.unlink()  # the bug is fixed
    await shop.retry_job(steps["inventory"].id)
    retried = steps_of(shop, run_id)
    assert (retried["confirm"].status, retried["confirm"].waiting_for) == (JobStatus.BLOCKED, 1)
    assert run_status(shop, run_id) == RunStatus.RUNNING
    await settle(shop, run_id)
    assert {job.status for job in steps_of(shop, run_id).values()} == {JobStatus.COMPLETED}
    assert run_status(shop, run_id) == RunStatus.COMPLETED
    assert timeline(path)["validate"]["end"].__len__() == 1  # what had completed did not run again


@pytest.mark.anyio
async def test_a_run_is_started_in_the_application_transaction(shop: JobQueue, tmp_path: Path) -> None:
    with shop.database.transaction() as session:
        kept = await CheckoutWorkflow.start({"path": str(tmp_path / "a.log")}, session=session)
    with pytest.raises(RuntimeError), shop.database.transaction() as session:
        dropped = await CheckoutWorkflow.start({"path": str(tmp_path / "b.log")}, session=session)
        raise RuntimeError("the application's transaction fails")
    assert len(steps_of(shop, kept)) == 5 and steps_of(shop, dropped) == {}


@pytest.mark.anyio
async def test_bad_input_and_unregistered_workflows_are_refused(shop: JobQueue, make_queue: QueueFactory) -> None:
    with pytest.raises(PayloadValidationError, match="input of workflow shop/checkout@1.0.0"):
        await CheckoutWorkflow.start({"seconds": "soon"})
    bare = make_queue(jobs=JOBS, workflows=[])
    with pytest.raises(JobRegistrationError, match="no workflow shop/checkout@1.0.0 is registered"):
        bare.start_workflow_sync(CheckoutWorkflow, {"path": "x"})
    with pytest.raises(JobRegistrationError, match="the job of step 'validate', StepJob, is not registered"):
        make_queue(jobs=[], workflows=WORKFLOWS)


@pytest.mark.slow
def test_three_worker_processes_keep_the_order_of_every_run(shop: JobQueue, start_worker, database_url: str,
                                                            tmp_path: Path) -> None:
    wait_started(*[start_worker(database_url, "--concurrency", "4",
                                JOBQUEUE_JOBS_MODULE="__tests__.support.workflow_jobs") for _ in range(3)])
    runs = [(tmp_path / f"run{n}.log", shop.start_workflow_sync(
        CheckoutWorkflow, {"path": str(tmp_path / f"run{n}.log"), "seconds": 0.05, "flaky": n % 2 == 0}))
        for n in range(6)]
    wait_for(lambda: all(run_status(shop, run_id) == RunStatus.COMPLETED for _, run_id in runs), timeout=60)
    workers = set()
    for path, run_id in runs:
        assert_in_dependency_order(path)
        workers |= {job.worker_id.split(":")[1] for job in steps_of(shop, run_id).values()}
    assert len(workers) >= 2 and os.getpid() not in workers


@pytest.mark.anyio
async def test_the_cli_lists_runs_and_shows_one_step_by_step(shop: JobQueue, database_url: str,
                                                              tmp_path: Path) -> None:
    run_id, _ = await failed_at_inventory(shop, tmp_path)

    def jobqueue(*args: str) -> str:
        return run_cli(database_url, "__tests__.support.workflow_jobs", "workflows", *args)

    shown = json.loads(jobqueue("show", str(run_id), "--json"))
    assert shown["status"] == "failed" and shown["workflow"] == "shop/checkout@1.0.0"
    assert [(s["step"], s["status"], s["waits_for"]) for s in shown["steps"]] == [
        ("validate", "completed", []), ("charge", "completed", ["validate"]), ("inventory", "failed", ["charge"]),
        ("create_order", "completed", ["charge"]), ("confirm", "cancelled", ["inventory", "create_order"])]
    table = jobqueue("show", str(run_id))
    assert f"run {run_id} · shop/checkout@1.0.0 · failed" in table and "out of stock" in table
    listed = jobqueue("list", "--status", "failed")
    assert f"{run_id} " in listed and "shop/checkout@1.0.0" in listed


@pytest.mark.slow
def test_a_worker_killed_mid_step_leaves_the_run_to_go_on_after_the_lease(shop: JobQueue, start_worker,
                                                                          database_url: str, tmp_path: Path) -> None:
    module = {"JOBQUEUE_JOBS_MODULE": "__tests__.support.workflow_jobs", "JOBQUEUE_LEASE_SECONDS": "1"}
    doomed = start_worker(database_url, **module)
    path = tmp_path / "steps.log"
    run_id = shop.start_workflow_sync(CheckoutWorkflow, {"path": str(path), "seconds": 1.5})
    wait_for(lambda: path.exists() and "start charge" in path.read_text())  # mid-step: charge sleeps 1.5 s
    doomed.stop(signal.SIGKILL)
    start_worker(database_url, **module)  # its maintenance recovers the step once the lease has expired
    wait_for(lambda: run_status(shop, run_id) == RunStatus.COMPLETED, timeout=60)
    seen = timeline(path)
    assert len(seen["charge"]["start"]) == 2 and len(seen["charge"]["end"]) == 1  # ran again, ended once
    assert_in_dependency_order(path)
    assert steps_of(shop, run_id)["charge"].attempts == 2


@pytest.mark.anyio
async def test_cancelling_a_run_stops_its_running_step_and_everything_after_it(shop: JobQueue,
                                                                                tmp_path: Path) -> None:
    path = tmp_path / "steps.log"
    run_id = await CheckoutWorkflow.start({"path": str(path), "seconds": 30})
    async with anyio.create_task_group() as tg:
        tg.start_soon(shop.run)
        await wait_for_async(lambda: steps_of(shop, run_id)["validate"].status == JobStatus.RUNNING)
        assert await shop.cancel_workflow(run_id) == (4, 1)
        await wait_for_async(lambda: steps_of(shop, run_id)["validate"].status == JobStatus.CANCELLED)
        shop.stop()
    assert {job.status for job in steps_of(shop, run_id).values()} == {JobStatus.CANCELLED}
    assert run_status(shop, run_id) == RunStatus.CANCELLED
    with pytest.raises(InvalidJobStateError, match=f"workflow run {run_id} is cancelled"):
        await shop.cancel_workflow(run_id)
    with pytest.raises(JobNotFoundError):
        await shop.cancel_workflow(999999)


@pytest.mark.anyio
async def test_a_run_announces_its_start_and_its_end(shop: JobQueue, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    async def record(event: Event) -> None:
        seen.append((event.type.value, event.run_id))

    shop.subscribe("workflow.*", record)
    run_id, broken = await failed_at_inventory(shop, tmp_path)
    broken.unlink()
    await shop.retry_job(steps_of(shop, run_id)["inventory"].id or 0)
    await settle(shop, run_id)
    assert seen == [("workflow.started", run_id), ("workflow.failed", run_id), ("workflow.completed", run_id)]


@pytest.mark.anyio
async def test_cancelling_a_due_step_by_hand_stops_what_depends_on_it(shop: JobQueue, tmp_path: Path) -> None:
    run_id = await CheckoutWorkflow.start({"path": str(tmp_path / "steps.log")})
    await shop.cancel_job(steps_of(shop, run_id)["validate"].id or 0)  # still pending: cancelled at once
    assert {job.status for job in steps_of(shop, run_id).values()} == {JobStatus.CANCELLED}
    assert run_status(shop, run_id) == RunStatus.FAILED
    other = await CheckoutWorkflow.start({"path": str(tmp_path / "other.log")})
    assert shop.cancel_jobs_sync(JobFilter(statuses=(JobStatus.PENDING,))) == (1, 0)  # the bulk cancel, alike
    assert run_status(shop, other) == RunStatus.FAILED
    assert steps_of(shop, other)["confirm"].status == JobStatus.CANCELLED


@pytest.mark.anyio
async def test_a_bulk_retry_of_failed_steps_gives_their_runs_back(shop: JobQueue, tmp_path: Path) -> None:
    run_id, broken = await failed_at_inventory(shop, tmp_path)
    broken.unlink()
    assert shop.retry_jobs_sync(JobFilter(statuses=(JobStatus.FAILED,))) == 1
    assert steps_of(shop, run_id)["confirm"].status == JobStatus.BLOCKED
    assert run_status(shop, run_id) == RunStatus.RUNNING
    await settle(shop, run_id)
    assert run_status(shop, run_id) == RunStatus.COMPLETED


@pytest.mark.anyio
async def test_a_resumable_step_resumes_from_its_checkpoint_and_the_run_goes_on(shop: JobQueue,
                                                                                tmp_path: Path) -> None:
    path = tmp_path / "steps.log"
    run_id = await ResumableWorkflow.start({"path": str(path)})
    await settle(shop, run_id)
    assert run_status(shop, run_id) == RunStatus.COMPLETED
    crunch = steps_of(shop, run_id)["crunch"]
    assert crunch.attempts == 1 and (crunch.checkpoint or {})["resumptions"] >= 2  # interrupted, resumed
    assert Path(f"{path}.items").read_text().split() == [str(n) for n in range(8)]  # each item once
    seen = timeline(path)
    assert len(seen["confirm"]["end"]) == 1 and min(seen["confirm"]["start"]) >= max(seen["crunch"]["end"])


@pytest.mark.anyio
async def test_a_step_waiting_for_a_failed_one_is_not_retried_before_it(shop: JobQueue, tmp_path: Path) -> None:
    """Before: it went back to pending with the empty payload of a step never released, and failed validating it."""
    run_id, broken = await failed_at_inventory(shop, tmp_path)
    confirm = steps_of(shop, run_id)["confirm"]
    assert confirm.status == JobStatus.CANCELLED
    with pytest.raises(InvalidJobStateError, match="waits for 'inventory' \\(failed\\): retry that step instead"):
        await shop.retry_job(confirm.id or 0)
    assert shop.retry_jobs_sync(JobFilter(statuses=(JobStatus.CANCELLED,))) == 0  # the bulk retry leaves it too
    broken.unlink()
    await shop.retry_job(steps_of(shop, run_id)["inventory"].id or 0)  # the failed step: the run goes on
    await settle(shop, run_id)
    assert steps_of(shop, run_id)["confirm"].status == JobStatus.COMPLETED
