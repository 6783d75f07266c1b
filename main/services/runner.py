"""Runs one claimed job and says what happened; the queue records the outcome.

The only database access here is a resumable job's own checkpoint writes, through the sink it is given.
"""

import traceback
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio
from anyio import CapacityLimiter

from main.base.jobs import BaseJob, JobContext, NonRetryableError, validate_payload
from main.base.jobs.base_job import result_value
from main.base.jobs.continuation.sinks import CheckpointSink
from main.base.jobs.interrupts import SHUTDOWN, StopSignal
from main.db.engine import Database
from main.db.rows import ClaimedJob
from main.errors import JobInterrupted, LeaseLostError, PayloadValidationError, ResultError
from main.events import EventBus


class StopReason(StrEnum):
    CANCELLED = "cancelled"  # cancel_job() from this or another process
    SHUTDOWN = SHUTDOWN  # the worker is stopping and the shutdown timeout ran out
    LEASE_LOST = "lease_lost"  # the lease expired and another worker took the job over


@dataclass
class RunningJob:
    """A claimed job, the signal that asks it to stop at its next item boundary (resumable jobs), and the
    cancel scope that stops it at once."""

    job: ClaimedJob
    signal: StopSignal = field(default_factory=StopSignal)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stop_reason: StopReason | None = None
    thread_released: anyio.Event | None = None  # a sync `perform`'s only (see JobContext.thread_released)

    def stop(self, reason: StopReason) -> None:
        """Stop at once (the scope is cancelled); the graceful request goes through `signal` instead."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.scope.cancel()


@dataclass(frozen=True)
class Completed:
    result: Any = None  # what perform returned, as the JSON value to store (None: nothing)


@dataclass(frozen=True)
class Failed:
    error: str
    traceback: str = ""
    retryable: bool = True


@dataclass(frozen=True)
class Interrupted:
    reason: StopReason


@dataclass(frozen=True)
class Paused:
    """A resumable job saved its checkpoint and stopped at an item boundary: requeue it to be resumed."""

    reason: str


Outcome = Completed | Failed | Interrupted | Paused


async def run_job(
    running: RunningJob, job_class: type[BaseJob[Any]] | None, database: Database, checkpoints: CheckpointSink,
    threads: CapacityLimiter | None = None, events: EventBus | None = None,
) -> Outcome:
    """Validate the stored payload, run one attempt, turn whatever happened into an Outcome."""
    job = running.job
    if running.stop_reason is not None:  # cancelled, or its lease lost, while it waited for a slot
        return Interrupted(running.stop_reason)
    if job_class is None:
        return Failed(
            f"unknown job type {job.type!r}: no job class of that name is registered in this worker "
            "(add it to the JOBS list of JOBQUEUE_JOBS_MODULE)",
            retryable=False,
        )
    if job.defect is not None:
        return Failed(job.defect, retryable=False)
    try:
        payload = validate_payload(job_class, job.payload)
    except PayloadValidationError as exc:
        return Failed(f"stored payload is no longer valid: {exc}", retryable=False)
    if not job_class._async_perform:  # an event costs as much as a no-op job: built only for those that need it
        running.thread_released = anyio.Event()
    context = JobContext(
        job_type=job.type, job_id=job.id, attempt=job.attempts, max_retries=job.max_retries, queue=job.queue,
        database=database, checkpoints=checkpoints, stop=running.signal, threads=threads,
        thread_released=running.thread_released, events=events,
    )
    outcome: Outcome | None = None
    with running.scope:
        try:
            outcome = Completed(result_value(job_class, await job_class(context).invoke(payload)))
        except JobInterrupted as stop:
            outcome = Paused(stop.reason)
        except LeaseLostError:
            outcome = Interrupted(StopReason.LEASE_LOST)
        except NonRetryableError as exc:
            outcome = Failed(_describe(exc), traceback.format_exc(), retryable=False)
        except ResultError as exc:  # the work is done: running it again would repeat it
            outcome = Failed(str(exc), retryable=False)
        except anyio.get_cancelled_exc_class():
            raise  # this job's scope (cancel, timeout, lease lost, stop_now) or the worker's own
        except BaseException as exc:  # SystemExit, KeyboardInterrupt... raised by job code end the job, not the worker
            outcome = Failed(_describe(exc), traceback.format_exc(), retryable=isinstance(exc, Exception))
    if running.stop_reason is not None and not isinstance(outcome, Completed):
        return Interrupted(running.stop_reason)
    assert outcome is not None
    return outcome


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
