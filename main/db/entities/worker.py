"""One row per live worker process: who it is, what it serves, when it last said it was alive."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import StoredJSON, UTCDateTime


class WorkerRow(SQLModel, table=True):
    """Registered when a worker starts, its `heartbeat_at` renewed while it runs, deleted when it stops; a row
    whose heartbeat is older than the lease belongs to a worker that died, and is pruned."""

    __tablename__ = "jobqueue_workers"
    __table_args__ = (sa.Index("ix_jobqueue_workers_heartbeat_at", "heartbeat_at"),)

    id: str = Field(primary_key=True, max_length=200)  # the worker id: host:pid:random
    host: str = Field(max_length=255)
    pid: int
    queues: list[str] = Field(sa_type=StoredJSON)  # empty: all queues
    concurrency: int
    version: str = Field(max_length=50)
    started_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime)
