"""One row per queue with a state of its own (today: paused), so every worker of the fleet sees it."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from main.db.types import UTCDateTime


class QueueRow(SQLModel, table=True):
    """A queue named here with `paused_at` set is claimed by no worker until it is resumed (set back to NULL)."""

    __tablename__ = "jobqueue_queues"

    name: str = Field(primary_key=True, max_length=100)
    paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
