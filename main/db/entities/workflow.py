"""Workflow runs, and which step waits for which: the rows that let a step become due in the transaction that
completes its last dependency."""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import BigIntId, StoredJSON, UTCDateTime


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # a step failed after its retries; steps that depended on it are cancelled
    CANCELLED = "cancelled"


class WorkflowRun(SQLModel, table=True):
    __tablename__ = "jobqueue_workflow_runs"

    id: int | None = Field(default=None, sa_type=BigIntId, primary_key=True)
    workflow: str = Field(max_length=200)  # namespace/name@version: a run finishes on the version it started with
    status: RunStatus = Field(default=RunStatus.RUNNING, sa_type=sa.String(16))
    input: Any = Field(sa_type=StoredJSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WorkflowEdge(SQLModel, table=True):
    """The step job `to_job_id` waits for the step job `from_job_id`."""

    __tablename__ = "jobqueue_workflow_edges"
    __table_args__ = (sa.Index("ix_workflow_edges_to", "to_job_id"),)

    from_job_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
    to_job_id: int = Field(sa_type=sa.BigInteger, primary_key=True)
