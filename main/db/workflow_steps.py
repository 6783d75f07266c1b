"""The statements that move workflow runs on, each inside the transaction that records the steps' outcomes: a step
becomes due in the transaction that completes its last dependency (no coordinator, no polling), a failed step
cancels the steps that can no longer run, a retried one gives them back.

Which step waits for which is stored as edges between the steps' jobs; a blocked step counts the dependencies
still to complete in `waiting_for`. Two workers completing the two branches of a diamond at once both decrement
the join's count, one after the other (the row lock), and only the one that brings it to 0 releases it.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update

from main.db.entities import Job, JobStatus
from main.db.entities.workflow import RunStatus, WorkflowEdge, WorkflowRun

jobs = Job.__table__  # type: ignore[attr-defined]
runs = WorkflowRun.__table__  # type: ignore[attr-defined]
edges = WorkflowEdge.__table__  # type: ignore[attr-defined]

# (workflow key, step name, the run's input, results of the steps it waited for by name) -> its payload document
PayloadFor = Callable[[str, str, dict[str, Any], dict[str, Any]], str]


def insert_run(connection: Connection, workflow: str, run_input: str, steps: Sequence[Any], now: datetime) -> int:
    """The run, its steps' jobs (due, or blocked until their dependencies complete) and their edges, in the
    caller's transaction. `steps`: PlannedStep, dependencies first. Returns the run's id."""
    run_id = connection.execute(insert(runs).values(
        workflow=workflow, status=RunStatus.RUNNING, input=json.loads(run_input), created_at=now,
        updated_at=now).returning(runs.c.id)).scalar_one()
    ids: dict[str, int] = {}
    for step in steps:
        ids[step.name] = connection.execute(insert(jobs).values(
            type=step.type, payload=json.loads(step.payload or "{}"), queue=step.queue, priority=step.priority,
            max_retries=step.max_retries, run_at=now, created_at=now, updated_at=now, attempts=0,
            cancel_requested=False, status=JobStatus.BLOCKED if step.depends_on else JobStatus.PENDING,
            workflow_run_id=run_id, workflow_step=step.name, waiting_for=len(step.depends_on),
        ).returning(jobs.c.id)).scalar_one()
    pairs = [{"from_job_id": ids[dependency], "to_job_id": ids[step.name]}
             for step in steps for dependency in step.depends_on]
    if pairs:
        connection.execute(insert(edges), pairs)
    return int(run_id)


@dataclass(frozen=True)
class RunEnded:
    run_id: int
    workflow: str
    status: RunStatus  # completed or failed


@dataclass(frozen=True)
class Advanced:
    released: bool  # a step became due
    settled: list[RunEnded]  # runs that ended here


def advance(connection: Connection, completed: Sequence[int], stopped: Sequence[int], now: datetime,
            payload_for: PayloadFor) -> Advanced:
    """After steps completed (their dependents may be due) or stopped for good (failed or cancelled: their
    dependents cannot run)."""
    released = _release(connection, completed, now, payload_for) if completed else []
    failed_to_build = [job_id for job_id, ok in released if not ok]
    if stopped or failed_to_build:
        _cancel_dependents(connection, [*stopped, *failed_to_build], now)
    settled = _settle_runs(connection, [*completed, *stopped, *failed_to_build], now)
    return Advanced(any(ok for _, ok in released), settled)


def _release(connection: Connection, completed: Sequence[int], now: datetime,
             payload_for: PayloadFor) -> list[tuple[int, bool]]:
    """Count the completed dependencies off their dependents; give those at 0 their payload and make them due.
    Returns (job id, whether its payload could be built) of each released step."""
    waited_on = select(func.count()).where(edges.c.to_job_id == jobs.c.id,
                                           edges.c.from_job_id.in_(bindparam("done", expanding=True)))
    dependents = select(edges.c.to_job_id).where(edges.c.from_job_id.in_(bindparam("done", expanding=True)))
    counted = connection.execute(
        update(jobs).where(jobs.c.id.in_(dependents), jobs.c.status == JobStatus.BLOCKED)
        .values(waiting_for=jobs.c.waiting_for - waited_on.scalar_subquery(), updated_at=now)
        .returning(jobs.c.id, jobs.c.waiting_for, jobs.c.workflow_run_id, jobs.c.workflow_step),
        {"done": list(completed)},
    ).all()
    released = []
    for job_id, waiting_for, run_id, step in sorted(counted):
        if waiting_for > 0:
            continue
        workflow, run_input = connection.execute(select(runs.c.workflow, runs.c.input).where(runs.c.id == run_id)).one()
        results: dict[str, Any] = dict(connection.execute(
            select(jobs.c.workflow_step, jobs.c.result).join(edges, edges.c.from_job_id == jobs.c.id)
            .where(edges.c.to_job_id == job_id)).all())
        values: dict[str, Any]
        try:
            payload = payload_for(workflow, step, run_input, results)
        except Exception as error:  # the builder or the step's schema refused: the step fails, saying why
            values = {"status": JobStatus.FAILED, "finished_at": now,
                      "last_error": f"the payload of step {step!r} could not be built from the results it waited "
                                    f"for: {type(error).__name__}: {error}"}
            released.append((job_id, False))
        else:
            values = {"status": JobStatus.PENDING, "payload": json.loads(payload), "run_at": now}
            released.append((job_id, True))
        connection.execute(update(jobs).where(jobs.c.id == job_id).values(updated_at=now, **values))
    return released


def _downstream(stopped: Sequence[int]) -> Any:
    """Every step that waits, directly or not, for one of `stopped`."""
    down = select(edges.c.to_job_id.label("id")).where(edges.c.from_job_id.in_(stopped)).cte(recursive=True)
    return down.union(select(edges.c.to_job_id).join(down, edges.c.from_job_id == down.c.id))


def _cancel_dependents(connection: Connection, stopped: Sequence[int], now: datetime) -> None:
    down = _downstream(stopped)
    connection.execute(
        update(jobs).where(jobs.c.id.in_(select(down.c.id)),
                           jobs.c.status.in_((JobStatus.BLOCKED, JobStatus.PENDING)))
        .values(status=JobStatus.CANCELLED, finished_at=now, updated_at=now,
                last_error="not run: a step it waits for failed or was cancelled"))


def _settle_runs(connection: Connection, steps: Sequence[int], now: datetime) -> list[RunEnded]:
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
    """Cancel a running run: its steps still to run are cancelled, its running ones asked to stop (their workers
    do within a heartbeat interval). (cancelled, asked to stop); None if the run is not running."""
    stopped = connection.execute(update(runs).where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING)
                                 .values(status=RunStatus.CANCELLED, finished_at=now, updated_at=now)).rowcount
    if not stopped:
        return None
    of_run = jobs.c.workflow_run_id == run_id
    cancelled = connection.execute(
        update(jobs).where(of_run, jobs.c.status.in_((JobStatus.BLOCKED, JobStatus.PENDING)))
        .values(status=JobStatus.CANCELLED, finished_at=now, updated_at=now, last_error="workflow run cancelled")
    ).rowcount
    asked = connection.execute(update(jobs).where(of_run, jobs.c.status == JobStatus.RUNNING)
                               .values(cancel_requested=True, updated_at=now)).rowcount
    return cancelled, asked


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

