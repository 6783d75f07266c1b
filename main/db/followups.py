"""What the end of a job moves on, in the transaction that records it: the workflow run it is a step of (its
dependents become due, or are cancelled; the run ends) and the batch it belongs to (settled with its callbacks once
its last job has ended). A step that fans out to a batch ends when its batch settles, which may release further
steps: the two are followed in turn until nothing more moves.

Every path that ends a job (a worker's outcomes, lease recovery, a cancel) calls `after_jobs_ended`; every path
that runs one again (a retry) calls `after_jobs_retried`.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from main.db import batch_members, workflow_steps
from main.db.batch_members import BatchSettled
from main.db.entities import BatchStatus
from main.db.workflow_steps import PayloadFor, RunEnded


@dataclass(frozen=True)
class Advanced:
    """What moved on, for the events to announce once the transaction has committed."""

    released: bool = False  # a job became due (a step, a batch's jobs, a callback)
    runs_ended: list[RunEnded] = field(default_factory=list)
    batches_started: list[tuple[int, int]] = field(default_factory=list)  # (batch id, jobs) of steps that fanned out
    batches_settled: list[BatchSettled] = field(default_factory=list)


def after_jobs_ended(connection: Connection, completed: Sequence[int], stopped: Sequence[int], now: datetime,
                     payload_for: PayloadFor, *, batches: Collection[int] = ()) -> Advanced:
    """After jobs completed, or stopped for good (failed, cancelled). `batches`: others to settle if they can (a
    batch just written without jobs, the batches of a cancelled run)."""
    released = False
    runs_ended: list[RunEnded] = []
    started: list[tuple[int, int]] = []
    settled: list[BatchSettled] = []
    to_settle = {*batches, *batch_members.batches_of(connection, [*completed, *stopped])}
    while completed or stopped or to_settle:
        release = workflow_steps.release(connection, completed, now, payload_for) if completed else None
        if release:
            released |= release.due
            started += release.fanned
            to_settle.update(batch_id for batch_id, _ in release.fanned)  # a batch without jobs settles at once
            stopped = [*stopped, *release.failed]
        if stopped:
            workflow_steps.cancel_dependents(connection, stopped, now)
        runs_ended += workflow_steps.settle_runs(connection, [*completed, *stopped], now)
        now_settled = batch_members.settle(connection, to_settle, now)
        settled += now_settled
        released |= any(batch.callbacks for batch in now_settled)
        completed, stopped, to_settle = [], [], set()
        for batch in now_settled:
            if batch.step_job_id is not None and workflow_steps.finish_fanned_step(connection, batch, now):
                (completed if batch.status is BatchStatus.SUCCEEDED else stopped).append(batch.step_job_id)
    return Advanced(released, runs_ended, started, settled)


def after_jobs_retried(connection: Connection, retried: Sequence[tuple[int, int | None, int | None]],
                       now: datetime) -> None:
    """Failed or cancelled jobs run again, given as (job id, workflow run id, batch id): what a retried step stopped
    waits again and its run runs again; the batch of a retried batch job runs again (and settles again, callbacks
    included, once its jobs have ended), and so does the step it fanned out from."""
    for job_id, run_id, _ in retried:
        if run_id is not None:
            workflow_steps.revive(connection, job_id, now)
    batch_jobs = [job_id for job_id, _, batch_id in retried if batch_id is not None]
    if fanned_from := [step for step in batch_members.reopen(connection, batch_jobs, now) if step is not None]:
        workflow_steps.wait_again(connection, fanned_from, now)
