"""The shapes a job has on its way in and out of the hot path: a validated job to insert, a claimed job to run.

Plain slotted dataclasses, not the `Job` entity: thousands are built per second, and neither needs the
columns people read (errors, timestamps, lease).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from main.errors import DuplicateJobError


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated job, ready to be written."""

    type: str
    payload: str  # the JSON document, encoded once (payload_document)
    queue: str
    priority: int
    max_retries: int
    run_at: datetime
    keys: "JobKeys | None" = None  # unique key and limits, for the jobs whose options give them


@dataclass(frozen=True, slots=True)
class JobKeys:
    """What only some jobs have: a unique key, a concurrency limit, a rate limit (the columns of the same names).
    Kept apart so that a plain job costs no more to build than before they existed."""

    unique_key: str | None = None  # another job of this type holding the key (see UniqueScope) makes this a no-op
    unique_scope: str | None = None
    raise_on_duplicate: bool = False  # DuplicateJobError instead of the holder's id
    concurrency_key: str | None = None  # at most concurrency_limit jobs of this key run at once
    concurrency_limit: int | None = None
    rate_key: str | None = None  # at most rate_limit jobs of this key start per rate_window seconds
    rate_limit: int | None = None
    rate_window: float | None = None
    trace_context: str | None = None  # JSON: the enqueuer's trace (W3C traceparent), when a propagator is set

    COLUMNS = ("unique_key", "unique_scope", "concurrency_key", "concurrency_limit", "rate_key", "rate_limit",
               "rate_window", "trace_context")

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in self.COLUMNS)


NO_KEYS = JobKeys()


# The job that holds a unique key, as the partial unique indexes see it ({p}: the driver's placeholder).
UNIQUE_HOLDER = ("SELECT id FROM jobs WHERE type = {p} AND unique_key = {p} AND unique_scope = {p} "
                 "AND (unique_scope = 'period' OR status IN ('pending', 'running'))")


def holder_params(job: NewJob) -> tuple[Any, ...]:
    """UNIQUE_HOLDER's parameters for a job skipped by a unique index."""
    keys = job.keys or NO_KEYS
    return job.type, keys.unique_key, keys.unique_scope


def refuse_duplicates(jobs: Sequence[NewJob], ids: Sequence[int], created: Sequence[bool]) -> None:
    """Inside the enqueue's transaction, after the insert: raise DuplicateJobError (and so write nothing) for the
    first job that was not created because its key was taken and that asked for an error instead of the id."""
    for job, job_id, new in zip(jobs, ids, created, strict=True):
        if not new and job.keys and job.keys.raise_on_duplicate:
            raise DuplicateJobError(job.type, job.keys.unique_key or "", job_id)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run a job it claimed."""

    id: int
    type: str
    payload: dict[str, Any]
    queue: str
    priority: int
    attempts: int  # this run's attempt, counted at the claim
    max_retries: int
    checkpoint: dict[str, Any] | None
    defect: str | None = None  # why the stored row cannot be run as it is; the job fails with this
    trace_context: dict[str, Any] | None = None  # where it was enqueued (see main/services/propagation.py)
    workflow_run_id: int | None = None  # a step of this workflow run: its outcome moves the run on
    batch_id: int | None = None  # one of this batch's jobs: its end may settle the batch

    # The columns a claim reads, in the order `from_row` takes them; JSON columns come as text.
    COLUMNS = ("id", "type", "payload", "queue", "priority", "attempts", "max_retries", "checkpoint", "trace_context",
               "workflow_run_id", "batch_id")

    @property
    def has_followers(self) -> bool:
        """Whether its end moves something else on (a workflow run, a batch): see main/db/followups.py."""
        return self.workflow_run_id is not None or self.batch_id is not None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "ClaimedJob":
        """Never raises. A row this worker cannot read (edited by hand, or written by a tool that skipped
        validation: SQLite keeps whatever it is given) becomes a job whose `defect` says what is wrong, so that
        this job fails alone instead of stopping the worker and every job claimed beside it."""
        job_id, job_type, payload, queue, priority, attempts, max_retries, checkpoint, trace_context, run_id, batch = (
            row)
        try:
            return cls(job_id, str(job_type), _json_object(payload, "payload"), str(queue),
                       _integer(priority, "priority"), _integer(attempts, "attempts"),
                       _integer(max_retries, "max_retries"),
                       None if checkpoint is None else _json_object(checkpoint, "checkpoint"),
                       trace_context=_trace_context(trace_context), workflow_run_id=run_id, batch_id=batch)
        except ValueError as exc:
            return cls(job_id, str(job_type), {}, str(queue), 0, _integer_or(attempts, 1), 0, None,
                       defect=f"the stored job cannot be read: {exc}", workflow_run_id=run_id, batch_id=batch)


def _trace_context(text: Any) -> dict[str, Any] | None:
    """A trace context that cannot be read costs the job its link to the enqueuer's trace, nothing more."""
    try:
        return None if text is None else _json_object(text, "trace_context")
    except ValueError:
        return None


def _json_object(text: Any, column: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        raise ValueError(f"{column} is not valid JSON: {str(text)[:80]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{column} is not a JSON object: {str(text)[:80]!r}")
    return value


def _integer(value: Any, column: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{column} is not an integer: {value!r:.80}")


def _integer_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
