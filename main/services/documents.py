"""Jobs, queues and workers as JSON documents: one shape for `--json` on the command line and the REST API."""

from typing import Any

from main.base.jobs.continuation import checkpoint_summary
from main.db.entities import BatchRow, Job, WorkerRow, WorkflowRun
from main.services.job_queue import QueueInfo

# What a job is, where it stands, when, who runs it, its keys and limits, then the data, long texts last.
JOB_FIELD_ORDER = ("id", "type", "status", "queue", "priority", "attempts", "max_retries", "run_at", "created_at",
                   "started_at", "finished_at", "updated_at", "worker_id", "lease_expires_at", "cancel_requested",
                   "unique_key", "unique_scope", "concurrency_key", "concurrency_limit", "rate_key", "rate_limit",
                   "rate_window", "result_awaited", "payload", "result", "progress", "checkpoint", "last_error",
                   "last_traceback")

_SUMMARY_FIELDS = ("id", "type", "status", "queue", "priority", "attempts", "max_retries", "run_at", "started_at",
                   "finished_at", "worker_id")


def job_document(job: Job) -> dict[str, Any]:
    """Every field, in the order people read them (a field JOB_FIELD_ORDER does not know comes last)."""
    fields = {**job.model_dump(mode="json"), "progress": checkpoint_summary(job.checkpoint)}
    return {name: fields[name] for name in sorted(fields, key=lambda name: (
        JOB_FIELD_ORDER.index(name) if name in JOB_FIELD_ORDER else len(JOB_FIELD_ORDER)))}


def job_summary(job: Job) -> dict[str, Any]:
    """A job in a list: no payload, result, checkpoint or traceback; the error's first line; its progress."""
    fields = job.model_dump(mode="json", include=set(_SUMMARY_FIELDS))
    error = (job.last_error or "").strip().splitlines()
    return {**{name: fields[name] for name in _SUMMARY_FIELDS}, "error": error[0] if error else None,
            "progress": checkpoint_summary(job.checkpoint)}


def queue_document(queue: QueueInfo) -> dict[str, Any]:
    return {"name": queue.name, "paused": queue.paused, "paused_at": queue.paused_at, "counts": queue.counts}


def worker_document(worker: WorkerRow, running: int) -> dict[str, Any]:
    return {**worker.model_dump(mode="json"), "running": running}


def batch_summary(batch: BatchRow, jobs_by_status: dict[str, int]) -> dict[str, Any]:
    """A batch in a list: its status, its jobs counted by status, its callbacks."""
    ended = batch.finished_at or None
    return {
        "id": batch.id, "status": str(batch.status), "total": batch.total, "jobs_by_status": jobs_by_status,
        "created_at": batch.created_at.isoformat(), "finished_at": ended.isoformat() if ended else None,
        "seconds": (ended - batch.created_at).total_seconds() if ended else None,
        "callbacks": [{"on": callback["on"], "type": callback["type"]} for callback in batch.callbacks],
        "workflow_run_id": batch.workflow_run_id, "step_job_id": batch.step_job_id,
    }


def batch_document(batch: BatchRow, jobs: list[Job]) -> dict[str, Any]:
    """A batch with its jobs, in the order they were given."""
    by_status: dict[str, int] = {}
    for job in jobs:
        by_status[job.status.value] = by_status.get(job.status.value, 0) + 1
    return {**batch_summary(batch, by_status), "jobs": [job_summary(job) for job in jobs]}


def run_document(run: WorkflowRun, steps: list[Job], depends_on: dict[str, list[str]]) -> dict[str, Any]:
    """A workflow run with its steps (in the order they were planned: dependencies first)."""
    by_status: dict[str, int] = {}
    for step in steps:
        by_status[step.status.value] = by_status.get(step.status.value, 0) + 1
    ended = run.finished_at or None
    return {
        "id": run.id, "workflow": run.workflow, "status": str(run.status), "input": run.input,
        "created_at": run.created_at.isoformat(), "finished_at": ended.isoformat() if ended else None,
        "seconds": (ended - run.created_at).total_seconds() if ended else None, "steps_by_status": by_status,
        "steps": [{"step": step.workflow_step, "job_id": step.id, "type": step.type, "status": step.status.value,
                   "waits_for": depends_on.get(step.workflow_step or "", []), "attempts": step.attempts,
                   "max_retries": step.max_retries,
                   "seconds": (step.finished_at - step.started_at).total_seconds()
                   if step.finished_at and step.started_at else None,
                   "result": step.result, "error": (step.last_error or "").strip().splitlines()[0]
                   if step.last_error else None} for step in steps],
    }
