"""The statements of batches: write a batch and its jobs, settle it once its last job has ended (its callback jobs
written in that same transaction, so exactly once), open it again when one of its jobs is retried.

Settling is decided under a lock on the batch's row, after every job of the transaction has been written: two
workers ending the last two jobs at once take the lock one after the other, and the second (PostgreSQL's READ
COMMITTED reads afresh after a lock wait) sees the first's job ended as well as its own. No counter to keep in
step with every path that ends a job: the jobs' rows are the count.
"""

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from main.db.entities import BatchRow, BatchStatus, Job, JobStatus
from main.db.rows import NO_KEYS, JobKeys, NewJob

jobs = Job.__table__  # type: ignore[attr-defined]
batches = BatchRow.__table__  # type: ignore[attr-defined]

_ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
_RUNS_CALLBACK = {BatchStatus.SUCCEEDED: ("success", "complete"), BatchStatus.FAILED: ("failure", "complete")}


@dataclass(frozen=True)
class BatchSettled:
    """A batch whose last job ended here, with its counts."""

    batch_id: int
    status: BatchStatus  # succeeded or failed
    total: int
    completed: int
    failed: int
    cancelled: int
    callbacks: int  # callback jobs written
    step_job_id: int | None  # the workflow step it belongs to, if any

    def outcome(self) -> dict[str, Any]:
        """What its callback jobs are given as `batch` (main/workflows/batches.py: BatchOutcome)."""
        return {"id": self.batch_id, "status": self.status.value, "total": self.total, "completed": self.completed,
                "failed": self.failed, "cancelled": self.cancelled}


def insert_batch(connection: Connection, members: Sequence[NewJob], callbacks: Sequence[dict[str, Any]],
                 now: datetime, *, run_id: int | None = None, step_job_id: int | None = None) -> int:
    """The batch and its jobs, in the caller's transaction. A batch without jobs is settled by `settle` at once."""
    batch_id = int(connection.execute(insert(batches).values(
        status=BatchStatus.RUNNING, total=len(members), completed=0, failed=0, cancelled=0,
        callbacks=list(callbacks), workflow_run_id=run_id, step_job_id=step_job_id, created_at=now,
        updated_at=now).returning(batches.c.id)).scalar_one())
    if members:
        connection.execute(insert(jobs), [_member_row(batch_id, member, now) for member in members])
    return batch_id


def _member_row(batch_id: int, member: NewJob, now: datetime) -> dict[str, Any]:
    keys = member.keys or NO_KEYS
    return {"type": member.type, "payload": json.loads(member.payload), "queue": member.queue,
            "priority": member.priority, "max_retries": member.max_retries, "run_at": member.run_at,
            "status": JobStatus.PENDING, "attempts": 0, "cancel_requested": False, "created_at": now,
            "updated_at": now, "batch_id": batch_id,
            **{column: value for column, value in zip(JobKeys.COLUMNS, keys.values(), strict=True)
               if column != "trace_context"},
            "trace_context": json.loads(keys.trace_context) if keys.trace_context else None}


def batches_of(connection: Connection, job_ids: Collection[int]) -> list[int]:
    """The batches the jobs belong to."""
    if not job_ids:
        return []
    return sorted(connection.execute(select(jobs.c.batch_id).distinct().where(
        jobs.c.id.in_(list(job_ids)), jobs.c.batch_id.is_not(None))).scalars())


def settle(connection: Connection, batch_ids: Collection[int], now: datetime) -> list[BatchSettled]:
    """Settle each running batch of `batch_ids` whose jobs have all ended: its counts, its status, its callback
    jobs (due now). Locks the batches in id order (no deadlock between two workers settling the same ones)."""
    settled = []
    for batch_id in sorted(batch_ids):
        row = connection.execute(select(batches.c.total, batches.c.callbacks, batches.c.step_job_id)
                                 .where(batches.c.id == batch_id, batches.c.status == BatchStatus.RUNNING)
                                 .with_for_update()).one_or_none()
        if row is None:
            continue
        total, callbacks, step_job_id = row
        counts: dict[str, int] = dict(connection.execute(
            select(jobs.c.status, func.count()).where(jobs.c.batch_id == batch_id).group_by(jobs.c.status)).all())
        if sum(counts.get(status, 0) for status in _ENDED) < total:
            continue
        completed, failed, cancelled = (counts.get(status, 0) for status in _ENDED)
        status = BatchStatus.SUCCEEDED if completed == total else BatchStatus.FAILED
        connection.execute(update(batches).where(batches.c.id == batch_id).values(
            status=status, completed=completed, failed=failed, cancelled=cancelled, finished_at=now, updated_at=now))
        due = [callback for callback in callbacks if callback["on"] in _RUNS_CALLBACK[status]]
        done = BatchSettled(batch_id, status, total, completed, failed, cancelled, len(due), step_job_id)
        if due:
            connection.execute(insert(jobs), [_callback_row(callback, done, now) for callback in due])
        settled.append(done)
    return settled


def _callback_row(callback: dict[str, Any], batch: BatchSettled, now: datetime) -> dict[str, Any]:
    return {"type": callback["type"], "payload": {**callback["payload"], "batch": batch.outcome()},
            "queue": callback["queue"], "priority": callback["priority"], "max_retries": callback["max_retries"],
            "run_at": now, "status": JobStatus.PENDING, "attempts": 0, "cancel_requested": False,
            "created_at": now, "updated_at": now}


def results(connection: Connection, batch_id: int) -> list[Any]:
    """The results of a batch's jobs, in the order they were given."""
    return list(connection.execute(select(jobs.c.result).where(jobs.c.batch_id == batch_id)
                                   .order_by(jobs.c.id)).scalars())


def reopen(connection: Connection, job_ids: Collection[int], now: datetime) -> list[int]:
    """Jobs of settled batches run again (retried): their batches run again, and settle (callbacks included)
    once those jobs end. Returns the fan-out steps whose batch reopened (they wait again)."""
    batch_ids = batches_of(connection, job_ids)
    if not batch_ids:
        return []
    return list(connection.execute(
        update(batches).where(batches.c.id.in_(batch_ids), batches.c.status != BatchStatus.RUNNING)
        .values(status=BatchStatus.RUNNING, finished_at=None, updated_at=now)
        .returning(batches.c.step_job_id)).scalars().all())


def fans_out(connection: Connection, step_job_id: int) -> int | None:
    """The batch a workflow step fanned out to, if it did."""
    return connection.execute(select(batches.c.id).where(batches.c.step_job_id == step_job_id)).scalar()


def batches_of_run(run_id: int) -> Any:
    """The batches a workflow run's steps fanned out to (a subquery of ids)."""
    return select(batches.c.id).where(batches.c.workflow_run_id == run_id)
