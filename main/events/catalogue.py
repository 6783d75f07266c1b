"""Every lifecycle event jobqueue emits: its name, the level its log line has, the fields it carries, and
what it means. docs/OBSERVABILITY.md prints this table; a test keeps the two the same.

Events are emitted in the process where the thing happens: `job.enqueued` where the job was enqueued, a run's
events in the worker that ran it, `queue.paused` where it was paused. The structured logs are a subscriber of
this catalogue: each event is one log line named like the event with `_` for `.` (`job.completed` ->
`job_completed`), at the level below.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Level = Literal["debug", "info", "warning", "error"]


class EventType(StrEnum):
    JOB_ENQUEUED = "job.enqueued"
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_RETRY_SCHEDULED = "job.retry_scheduled"
    JOB_CANCEL_REQUESTED = "job.cancel_requested"
    JOB_CANCELLED = "job.cancelled"
    JOB_RELEASED = "job.released"
    JOB_PAUSED = "job.paused"
    JOB_RESUMED = "job.resumed"
    JOB_LEASE_LOST = "job.lease_lost"
    JOB_RECOVERED = "job.recovered"
    JOB_RETRIED = "job.retried"
    JOBS_RETRIED = "jobs.retried"
    JOBS_CANCELLED = "jobs.cancelled"
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    CHECKPOINT_SAVED = "checkpoint.saved"
    WORKER_STARTED = "worker.started"
    WORKER_STOPPED = "worker.stopped"
    WORKER_HEARTBEAT = "worker.heartbeat"
    QUEUE_PAUSED = "queue.paused"
    QUEUE_RESUMED = "queue.resumed"
    SCHEDULE_ENQUEUED = "schedule.enqueued"
    CLEANUP_DONE = "cleanup.done"
    WORKFLOW_STARTED = "workflow.started"
    WORKFLOW_COMPLETED = "workflow.completed"
    WORKFLOW_FAILED = "workflow.failed"
    WORKFLOW_CANCELLED = "workflow.cancelled"
    BATCH_STARTED = "batch.started"
    BATCH_SETTLED = "batch.settled"

    @property
    def log_name(self) -> str:
        return self.value.replace(".", "_")


_JOB = ("job_id", "job_type", "queue", "attempt")


@dataclass(frozen=True, slots=True)
class EventInfo:
    level: Level
    fields: tuple[str, ...]
    meaning: str


CATALOGUE: dict[EventType, EventInfo] = {
    EventType.JOB_ENQUEUED: EventInfo("debug", ("job_id", "job_type", "queue", "run_at"),
                                      "a job was written (with session=, in the application's transaction: it "
                                      "exists once that commits)"),
    EventType.JOB_STARTED: EventInfo("info", _JOB, "a worker claimed the job and starts an attempt"),
    EventType.JOB_COMPLETED: EventInfo("info", (*_JOB, "duration"), "perform returned; the result is stored"),
    EventType.JOB_FAILED: EventInfo("error", (*_JOB, "duration", "error"),
                                    "the attempt failed and no retry is left (or the error is not retryable)"),
    EventType.JOB_RETRY_SCHEDULED: EventInfo("warning", (*_JOB, "duration", "error", "retry_in", "retries_left"),
                                             "the attempt failed; the job runs again after its backoff"),
    EventType.JOB_CANCEL_REQUESTED: EventInfo("info", ("job_id", "status"),
                                              "cancel was asked: a pending job is cancelled, a running one is "
                                              "asked to stop"),
    EventType.JOB_CANCELLED: EventInfo("info", (*_JOB, "duration"), "a running job stopped because it was cancelled"),
    EventType.JOB_RELEASED: EventInfo("info", (*_JOB, "duration", "reason"),
                                      "the job went back to pending without counting the attempt: its worker "
                                      "stopped, or a resumable job paused (job.paused came first)"),
    EventType.JOB_PAUSED: EventInfo("info", (*_JOB, "reason", "step", "cursor", "done", "total", "resumptions",
                                             "finished_steps"),
                                    "a resumable job saved its checkpoint and stopped at an item boundary (shutdown, "
                                    "max_run_time, a paused queue); it is resumed from there"),
    EventType.JOB_RESUMED: EventInfo("info", (*_JOB, "step", "cursor", "done", "resumptions"),
                                     "a resumable job starts again from the checkpoint of an earlier run"),
    EventType.JOB_LEASE_LOST: EventInfo("warning", (*_JOB, "duration", "detail"),
                                        "the job's lease expired while it ran here; another worker owns it now and "
                                        "this run's outcome is not written"),
    EventType.JOB_RECOVERED: EventInfo("warning", ("job_id", "job_type", "queue", "attempt", "outcome",
                                                   "previous_worker"),
                                       "the worker running the job died (its lease expired): the job is pending "
                                       "again, failed (no retries left) or cancelled (it was asked to)"),
    EventType.JOB_RETRIED: EventInfo("info", ("job_id",), "a failed or cancelled job was put back to pending by hand"),
    EventType.JOBS_RETRIED: EventInfo("info", ("count", "statuses", "types", "queues"),
                                      "the jobs a filter selects were put back to pending by hand"),
    EventType.JOBS_CANCELLED: EventInfo("info", ("cancelled", "asked_to_stop", "statuses", "types", "queues"),
                                        "the jobs a filter selects were cancelled (running ones asked to stop)"),
    EventType.STEP_STARTED: EventInfo("debug", (*_JOB, "step", "cursor"),
                                      "a step of a resumable job begins, or resumes after its cursor"),
    EventType.STEP_COMPLETED: EventInfo("debug", (*_JOB, "step", "done"), "a step of a resumable job finished"),
    EventType.CHECKPOINT_SAVED: EventInfo("debug", (*_JOB, "step", "cursor", "done", "total", "saves"),
                                          "a resumable job committed its checkpoint (with the writes of its items)"),
    EventType.WORKER_STARTED: EventInfo("info", ("types", "concurrency", "queues", "poll_interval"),
                                        "a worker starts claiming"),
    EventType.WORKER_STOPPED: EventInfo("info", (), "a worker stopped: its jobs are finished or handed back"),
    EventType.WORKER_HEARTBEAT: EventInfo("debug", ("jobs", "loop_lag"),
                                          "a worker renewed the leases of its jobs (loop_lag: seconds since its "
                                          "event loop last ticked)"),
    EventType.QUEUE_PAUSED: EventInfo("info", ("queue",), "no worker claims from the queue until it is resumed"),
    EventType.QUEUE_RESUMED: EventInfo("info", ("queue", "was_paused"), "workers claim from the queue again"),
    EventType.SCHEDULE_ENQUEUED: EventInfo("info", ("schedule", "slot", "job_id", "job_type"),
                                           "a worker enqueued a cron schedule's job for its slot"),
    EventType.CLEANUP_DONE: EventInfo("info", ("deleted", "retention"),
                                      "finished jobs past the retention were deleted"),
    EventType.WORKFLOW_STARTED: EventInfo("info", ("run_id", "workflow", "steps"),
                                          "a workflow run and its steps were written (its steps' own events are the "
                                          "job.* events of their jobs)"),
    EventType.WORKFLOW_COMPLETED: EventInfo("info", ("run_id", "workflow"), "every step of the run completed"),
    EventType.WORKFLOW_FAILED: EventInfo("error", ("run_id", "workflow"),
                                         "a step failed for good: the steps that depend on it are cancelled"),
    EventType.WORKFLOW_CANCELLED: EventInfo("info", ("run_id", "cancelled", "asked_to_stop"),
                                            "the run was cancelled: steps still to run cancelled, running ones "
                                            "asked to stop"),
    EventType.BATCH_STARTED: EventInfo("info", ("batch_id", "jobs"),
                                       "a batch and its jobs were written (by queue.start_batch, or by a workflow step "
                                       "that fans out)"),
    EventType.BATCH_SETTLED: EventInfo("info", ("batch_id", "status", "total", "completed", "failed", "cancelled",
                                                "callbacks"),
                                       "the last job of a batch ended: its status (succeeded, failed) and counts, "
                                       "and how many callback jobs were enqueued, once"),
}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened. `fields` holds what the catalogue lists for its type (those known)."""

    type: EventType
    at: datetime  # wall clock, UTC
    worker_id: str  # the queue (process) that emitted it
    fields: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        """`event.job_id` reads a field; a field of its type that this event does not carry is None."""
        if name not in _SLOTS and name in CATALOGUE[self.type].fields:
            return self.fields.get(name)
        raise AttributeError(f"an event has no field {name!r} (see CATALOGUE for what each type carries)")


_SLOTS = frozenset(("type", "at", "worker_id", "fields"))
