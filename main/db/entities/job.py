"""The `jobs` table: one row per enqueued job, from pending to a terminal status.

This class is the one place that shows the current schema (see SCHEMA_VERSION in main/db/schema.py).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import BigIntId, UTCDateTime


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

_status_type = sa.Enum(
    JobStatus, native_enum=False, length=16, values_callable=lambda enum: [member.value for member in enum]
)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        # The claim query: pending rows of some queues, due, best priority first.
        sa.Index("ix_jobs_claim", "status", "queue", "priority", "run_at"),
        # The claim query over all queues, in its own order: no sort of every pending row per claim.
        sa.Index("ix_jobs_due", "status", sa.desc("priority"), "run_at", "id"),
        # Lease recovery and cleanup scan by status and a time.
        sa.Index("ix_jobs_lease", "status", "lease_expires_at"),
        sa.Index("ix_jobs_finished", "status", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntId)
    type: str = Field(max_length=200)
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
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
    checkpoint: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
