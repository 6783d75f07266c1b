"""The `jobs` table: one row per enqueued job, from pending to a terminal status.

This class is the one place that shows the current schema (see SCHEMA_VERSION in main/db/schema.py).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import BigIntId, StoredJSON, UTCDateTime


class JobStatus(StrEnum):
    PENDING = "pending"
    BLOCKED = "blocked"  # a workflow step waiting for the steps it depends on
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class UniqueScope(StrEnum):
    """How long a job's unique key keeps others with the same key out."""

    ACTIVE = "active"  # while the job is pending or running
    PERIOD = "period"  # for good: the key names its time window (Unique(period=...))


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

_status_type = sa.Enum(
    JobStatus, native_enum=False, length=16, values_callable=lambda enum: [member.value for member in enum]
)


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, for both engines. Queries must repeat it literally (not as a bound
    parameter) for the planners to use the index: see `PENDING` and `RUNNING` in main/db/store.py."""
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        # Partial indexes: a row sits only in the index of its current state, so a job's claim and its outcome
        # each touch a single small index instead of every index that starts with `status` (schema v3).
        # The claim over all queues reads pending jobs in claim order, no sort:
        sa.Index("ix_jobs_pending", sa.desc("priority"), "run_at", "id", **_where("status = 'pending'")),
        # ... and over some queues (workers started with --queue):
        sa.Index("ix_jobs_pending_queue", "queue", sa.desc("priority"), "run_at", "id", **_where("status = 'pending'")),
        # Lease recovery: running jobs by when their lease expires. Not `status = 'running'`: outcomes ask for that
        # status (to check the job is still the worker's) and must look their jobs up by id (revision 0011).
        sa.Index("ix_jobs_leased", "lease_expires_at", **_where("lease_expires_at IS NOT NULL")),
        # Cleanup: finished jobs by when they finished.
        sa.Index("ix_jobs_finished_at", "finished_at", **_where("finished_at IS NOT NULL")),
        # Unique jobs: a duplicate enqueue conflicts here and writes nothing (ON CONFLICT DO NOTHING). A key of
        # scope 'active' is held while its job is pending or running; of scope 'period' (its window in the key), always.
        sa.Index("ux_jobs_unique_active", "type", "unique_key", unique=True,
                 **_where(f"unique_scope = '{UniqueScope.ACTIVE.value}' AND status IN ('pending', 'running')")),
        sa.Index("ux_jobs_unique_period", "type", "unique_key", unique=True,
                 **_where(f"unique_scope = '{UniqueScope.PERIOD.value}'")),
        # Limits, asked inside the claim: running jobs per concurrency key; starts per rate key, by when.
        sa.Index("ix_jobs_running_concurrency", "concurrency_key",
                 **_where("status = 'running' AND concurrency_key IS NOT NULL")),
        sa.Index("ix_jobs_rate_started", "rate_key", "started_at", **_where("rate_key IS NOT NULL")),
        # Workflows: a run's steps.
        sa.Index("ix_jobs_workflow_run", "workflow_run_id", **_where("workflow_run_id IS NOT NULL")),
        sa.Index("ix_jobs_batch", "batch_id", **_where("batch_id IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    type: str = Field(max_length=200)
    payload: dict[str, Any] = Field(sa_type=StoredJSON)
    status: JobStatus = Field(default=JobStatus.PENDING, sa_type=_status_type)
    queue: str = Field(default="default", max_length=100)
    priority: int = 0
    attempts: int = 0
    max_retries: int = 0
    run_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    worker_id: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancel_requested: bool = False
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    last_traceback: str | None = Field(default=None, sa_type=sa.Text)
    checkpoint: dict[str, Any] | None = Field(default=None, sa_type=StoredJSON)
    result: Any = Field(default=None, sa_type=StoredJSON, nullable=True)  # what perform returned, once completed
    unique_key: str | None = Field(default=None, max_length=300)
    unique_scope: UniqueScope | None = Field(default=None, sa_type=sa.String(8))
    concurrency_key: str | None = Field(default=None, max_length=300)  # at most concurrency_limit running per key
    concurrency_limit: int | None = None
    rate_key: str | None = Field(default=None, max_length=300)  # at most rate_limit starts per rate_window seconds
    rate_limit: int | None = None
    rate_window: float | None = None
    result_awaited: bool | None = None  # true: someone waits in queue.result(), so its end is announced
    trace_context: dict[str, Any] | None = Field(default=None, sa_type=StoredJSON, nullable=True)  # the enqueuer's
    workflow_run_id: int | None = Field(default=None, sa_type=sa.BigInteger)  # a step of this workflow run
    workflow_step: str | None = Field(default=None, max_length=200)
    waiting_for: int | None = None  # a blocked step: how many of the steps it depends on have not completed
    batch_id: int | None = Field(default=None, sa_type=sa.BigInteger)  # one of this batch's jobs

    @property
    def has_followers(self) -> bool:
        """Whether its end moves something else on (a workflow run, a batch): see main/db/followups.py."""
        return self.workflow_run_id is not None or self.batch_id is not None
