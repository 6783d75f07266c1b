"""Test helpers for your own resumable jobs (like Rails' continuation test helper).

    job_id = await ProcessOrdersJob.perform_later({})
    row = await run_job(job_id, interrupt=interrupt_at("process_orders", cursor=5))
    assert row.status == JobStatus.PENDING and row.checkpoint["steps"]["process_orders"]["cursor"] == 5
    row = await run_job(job_id)                      # resume: continues with the item after 5
    assert row.status == JobStatus.COMPLETED

The job runs inline, in this task, through the same code path as in a worker (claim, run, record), against
the queue's real database.
"""

from main.base.jobs.interrupts import (
    Interrupt,
    interrupt_after_items,
    interrupt_after_step,
    interrupt_at,
)
from main.db.entities import Job
from main.errors import JobQueueError


async def run_job(job_id: int, *, interrupt: Interrupt | None = None) -> Job:
    """Run (or resume) job `job_id` once, inline; stop it where `interrupt` says. Returns the row after."""
    from main.services.job_queue import get_job_queue

    row = await get_job_queue().work_one(job_id, interrupt=interrupt)
    if row is None:
        raise JobQueueError(f"job {job_id} is not pending and due; it cannot be run now")
    return row


__all__ = ["Interrupt", "interrupt_after_items", "interrupt_after_step", "interrupt_at", "run_job"]
