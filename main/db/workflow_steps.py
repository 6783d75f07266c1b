"""The statements that move workflow runs on, each inside the transaction that records the steps' outcomes (put
together in main/db/followups.py): a step becomes due in the transaction that completes its last dependency (no
coordinator, no polling), a failed step cancels the steps that can no longer run, a retried one gives them back.

Which step waits for which is stored as edges between the steps' jobs; a blocked step counts the dependencies
still to complete in `waiting_for`. Two workers completing the two branches of a diamond at once both decrement
the join's count, one after the other (the row lock), and only the one that brings it to 0 releases it.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, or_, select, update

from main.db import batch_members
from main.db.batch_members import BatchSettled
from main.db.entities import BatchStatus, Job, JobStatus
from main.db.entities.workflow import RunStatus, WorkflowEdge, WorkflowRun
from main.db.rows import NewJob

jobs = Job.__table__  # type: ignore[attr-defined]
runs = WorkflowRun.__table__  # type: ignore[attr-defined]
edges = WorkflowEdge.__table__  # type: ignore[attr-defined]

# (workflow key, step name, the run's input, results of the steps it waited for by name) -> its payload document
# (a list of them for a step that fans out to a batch)
PayloadFor = Callable[[str, str, dict[str, Any], dict[str, Any]], str | list[str]]


def insert_run(connection: Connection, workflow: str, run_input: str, steps: Sequence[Any],
               now: datetime) -> tuple[int, list[tuple[int, int]]]:
    """The run, its steps' jobs (due, or blocked until their dependencies complete) and their edges, in the
    caller's transaction. `steps`: PlannedStep, dependencies first. Returns the run's id and the batches (id, jobs)
    its steps that wait for nothing fanned out to."""
    run_id = connection.execute(insert(runs).values(
        workflow=workflow, status=RunStatus.RUNNING, input=json.loads(run_input), created_at=now,
        updated_at=now).returning(runs.c.id)).scalar_one()
    ids: dict[str, int] = {}
    fanned = []
    for step in steps:
        fans_out = isinstance(step.payload, list)
        ids[step.name] = connection.execute(insert(jobs).values(
            type=step.type, payload={} if fans_out else json.loads(step.payload or "{}"), queue=step.queue,
            priority=step.priority, max_retries=step.max_retries, run_at=now, created_at=now, updated_at=now,
            attempts=0, cancel_requested=False,
            status=JobStatus.BLOCKED if step.depends_on or fans_out else JobStatus.PENDING,
            workflow_run_id=run_id, workflow_step=step.name, waiting_for=len(step.depends_on),
        ).returning(jobs.c.id)).scalar_one()
        if fans_out:
            fanned.append(_fan_out(connection, ids[step.name], run_id, step.payload, now))
    pairs = [{"from_job_id": ids[dependency], "to_job_id": ids[step.name]}
             for step in steps for dependency in step.depends_on]
    if pairs:
        connection.execute(insert(edges), pairs)
    return int(run_id), fanned


def _fan_out(connection: Connection, step_job_id: int, run_id: int, documents: Sequence[str],
             now: datetime) -> tuple[int, int]:
    """A step that fans out: its payloads become the jobs of a batch (of the step's job type, queue, priority and
    retries); the step itself stays blocked until the batch settles. Returns the batch's id and its jobs."""
    type_, queue, priority, max_retries = connection.execute(
        select(jobs.c.type, jobs.c.queue, jobs.c.priority, jobs.c.max_retries).where(jobs.c.id == step_job_id)).one()
    members = [NewJob(type_, document, queue, priority, max_retries, now) for document in documents]
    batch_id = batch_members.insert_batch(connection, members, [], now, run_id=run_id, step_job_id=step_job_id)
    return batch_id, len(members)


@dataclass(frozen=True)
class RunEnded:
    run_id: int
    workflow: str
    status: RunStatus  # completed or failed


@dataclass(frozen=True)
class Released:
    """What completing some steps released."""

    due: bool = False  # a step became due
    failed: tuple[int, ...] = ()  # steps whose payload could not be built: failed, saying why
    fanned: tuple[tuple[int, int], ...] = ()  # batches (id, jobs) that steps fanned out to


def release(connection: Connection, completed: Sequence[int], now: datetime, payload_for: PayloadFor) -> Released:
    """Count the completed dependencies off their dependents; give those at 0 their payload (or their batch, for
    a step that fans out) and make them due."""
    waited_on = select(func.count()).where(edges.c.to_job_id == jobs.c.id,
                                           edges.c.from_job_id.in_(bindparam("done", expanding=True)))
    dependents = select(edges.c.to_job_id).where(edges.c.from_job_id.in_(bindparam("done", expanding=True)))
    counted = connection.execute(
        update(jobs).where(jobs.c.id.in_(dependents), jobs.c.status == JobStatus.BLOCKED)
        .values(waiting_for=jobs.c.waiting_for - waited_on.scalar_subquery(), updated_at=now)
        .returning(jobs.c.id, jobs.c.waiting_for, jobs.c.workflow_run_id, jobs.c.workflow_step),
        {"done": list(completed)},
    ).all()
    due, failed, fanned = False, [], []
    for job_id, waiting_for, run_id, step in sorted(counted):
        if waiting_for > 0:
            continue
        workflow, run_input = connection.execute(select(runs.c.workflow, runs.c.input).where(runs.c.id == run_id)).one()
        results: dict[str, Any] = dict(connection.execute(
            select(jobs.c.workflow_step, jobs.c.result).join(edges, edges.c.from_job_id == jobs.c.id)
            .where(edges.c.to_job_id == job_id)).all())
        try:
            payload = payload_for(workflow, step, run_input, results)
        except Exception as error:  # the builder or the step's schema refused: the step fails, saying why
            connection.execute(update(jobs).where(jobs.c.id == job_id).values(
                status=JobStatus.FAILED, finished_at=now, updated_at=now,
                last_error=f"the payload of step {step!r} could not be built from the results it waited for: "
                           f"{type(error).__name__}: {error}"))
            failed.append(job_id)
            continue
        if isinstance(payload, list):
            fanned.append(_fan_out(connection, job_id, run_id, payload, now))
            due |= bool(payload)
        else:
            connection.execute(update(jobs).where(jobs.c.id == job_id).values(
                status=JobStatus.PENDING, payload=json.loads(payload), run_at=now, updated_at=now))
            due = True
    return Released(due, tuple(failed), tuple(fanned))


def finish_fanned_step(connection: Connection, batch: BatchSettled, now: datetime) -> bool:
    """A step whose batch settled: completed (its result: the results of its batch's jobs, in order) or failed.
    False if the step no longer waits for it (its run was cancelled)."""
    assert batch.step_job_id is not None
    values: dict[str, Any] = {"status": JobStatus.COMPLETED, "result": batch_members.results(connection,
                                                                                            batch.batch_id)}
    if batch.status is not BatchStatus.SUCCEEDED:
        values = {"status": JobStatus.FAILED, "last_error": f"{batch.failed} failed and {batch.cancelled} cancelled "
                                                            f"of the {batch.total} jobs of its batch {batch.batch_id}"}
    return bool(connection.execute(update(jobs).where(jobs.c.id == batch.step_job_id,
                                                      jobs.c.status == JobStatus.BLOCKED)
                                   .values(finished_at=now, updated_at=now, **values)).rowcount)


def wait_again(connection: Connection, step_ids: Sequence[int], now: datetime) -> None:
    """Steps whose batch runs again (a job of it was retried) wait for it again, and what they stopped runs again."""
    waiting = connection.execute(
        update(jobs).where(jobs.c.id.in_(step_ids), jobs.c.status == JobStatus.FAILED)
        .values(status=JobStatus.BLOCKED, finished_at=None, last_error=None, updated_at=now)
        .returning(jobs.c.id)).scalars().all()
    for step_id in waiting:  # not a step cancelled with its run: that run stays cancelled
        revive(connection, step_id, now)


def _downstream(stopped: Sequence[int]) -> Any:
    """Every step that waits, directly or not, for one of `stopped`."""
    down = select(edges.c.to_job_id.label("id")).where(edges.c.from_job_id.in_(stopped)).cte(recursive=True)
    return down.union(select(edges.c.to_job_id).join(down, edges.c.from_job_id == down.c.id))


def cancel_dependents(connection: Connection, stopped: Sequence[int], now: datetime) -> None:
    down = _downstream(stopped)
    connection.execute(
        update(jobs).where(jobs.c.id.in_(select(down.c.id)),
                           jobs.c.status.in_((JobStatus.BLOCKED, JobStatus.PENDING)))
        .values(status=JobStatus.CANCELLED, finished_at=now, updated_at=now,
                last_error="not run: a step it waits for failed or was cancelled"))


def settle_runs(connection: Connection, steps: Sequence[int], now: datetime) -> list[RunEnded]:
    """A run whose every step completed is completed; one with a step failed or cancelled for good is failed.
    Returns the runs that ended here."""
    touched = select(jobs.c.workflow_run_id).where(jobs.c.id.in_(steps))
    step_of_run = jobs.c.workflow_run_id == runs.c.id
    ended = []
    for status, condition in (
        (RunStatus.FAILED, exists().where(step_of_run, jobs.c.status.in_((JobStatus.FAILED, JobStatus.CANCELLED)))),
        (RunStatus.COMPLETED, ~exists().where(step_of_run, jobs.c.status != JobStatus.COMPLETED)),
    ):
        rows = connection.execute(
            update(runs).where(runs.c.id.in_(touched), runs.c.status == RunStatus.RUNNING, condition)
            .values(status=status, finished_at=now, updated_at=now).returning(runs.c.id, runs.c.workflow))
        ended += [RunEnded(run_id, workflow, status) for run_id, workflow in rows]
    return ended


def cancel_run(connection: Connection, run_id: int, now: datetime) -> tuple[int, int] | None:
    """Cancel a running run: its steps still to run are cancelled (with the jobs of the batches its steps fanned out
    to), its running ones asked to stop (their workers do within a heartbeat interval). (cancelled, asked to stop);
    None if the run is not running."""
    stopped = connection.execute(update(runs).where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING)
                                 .values(status=RunStatus.CANCELLED, finished_at=now, updated_at=now)).rowcount
    if not stopped:
        return None
    of_run = or_(jobs.c.workflow_run_id == run_id, jobs.c.batch_id.in_(batch_members.batches_of_run(run_id)))
    cancelled = connection.execute(
        update(jobs).where(of_run, jobs.c.status.in_((JobStatus.BLOCKED, JobStatus.PENDING)))
        .values(status=JobStatus.CANCELLED, finished_at=now, updated_at=now, last_error="workflow run cancelled")
    ).rowcount
    asked = connection.execute(update(jobs).where(of_run, jobs.c.status == JobStatus.RUNNING)
                               .values(cancel_requested=True, updated_at=now)).rowcount
    return cancelled, asked


def unfinished_dependencies(connection: Connection, job_id: int) -> list[tuple[str, str]]:
    """The steps a step waits for that have not completed, (name, status): a step retried before them would run
    without the payload they build."""
    upstream = jobs.alias("upstream")
    return [(name, status) for name, status in connection.execute(
        select(upstream.c.workflow_step, upstream.c.status).join(edges, edges.c.from_job_id == upstream.c.id)
        .where(edges.c.to_job_id == job_id, upstream.c.status != JobStatus.COMPLETED).order_by(upstream.c.id))]


def ready_to_retry() -> Any:
    """A condition on `jobs`: not a step with a dependency that has not completed (see unfinished_dependencies)."""
    upstream = jobs.alias("upstream")
    return ~exists().where(edges.c.to_job_id == jobs.c.id, upstream.c.id == edges.c.from_job_id,
                           upstream.c.status != JobStatus.COMPLETED)


def revive(connection: Connection, job_id: int, now: datetime) -> None:
    """A failed or cancelled step was retried: the steps cancelled because of it wait again (each for its
    dependencies not completed), and its run runs again."""
    down = _downstream([job_id])
    upstream = jobs.alias("upstream")
    still_waiting = (select(func.count()).select_from(edges.join(upstream, upstream.c.id == edges.c.from_job_id))
                     .where(edges.c.to_job_id == jobs.c.id, upstream.c.status != JobStatus.COMPLETED))
    connection.execute(
        update(jobs).where(jobs.c.id.in_(select(down.c.id)), jobs.c.status == JobStatus.CANCELLED)
        .values(status=JobStatus.BLOCKED, finished_at=None, last_error=None, updated_at=now,
                waiting_for=still_waiting.scalar_subquery()))
    connection.execute(
        update(runs).where(runs.c.id == select(jobs.c.workflow_run_id).where(jobs.c.id == job_id).scalar_subquery(),
                           runs.c.status.in_((RunStatus.FAILED, RunStatus.CANCELLED)))
        .values(status=RunStatus.RUNNING, finished_at=None, updated_at=now))

