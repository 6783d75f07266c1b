"""Batches: jobs enqueued together, whose callback jobs run once when the last of them has ended."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import BigIntId, StoredJSON, UTCDateTime


class BatchStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every job completed
    FAILED = "failed"  # every job ended, at least one failed or was cancelled


class BatchRow(SQLModel, table=True):
    __tablename__ = "jobqueue_batches"

    id: int | None = Field(default=None, sa_type=BigIntId, primary_key=True)
    status: BatchStatus = Field(default=BatchStatus.RUNNING, sa_type=sa.String(16))
    total: int = 0
    # Counted when the batch settles (while it runs, its jobs' rows say where it stands):
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    callbacks: Any = Field(sa_type=StoredJSON)  # [{"on": "success"|"failure"|"complete", "type", "queue", ...}]
    workflow_run_id: int | None = Field(default=None, sa_type=sa.BigInteger)  # a fan-out step's batch: its run
    step_job_id: int | None = Field(default=None, sa_type=sa.BigInteger, unique=True)  # ... and the step's own job
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
