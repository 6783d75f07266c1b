"""One row per cron schedule: the last slot it enqueued, so that each slot is enqueued once by one worker."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from main.db.types import UTCDateTime


class ScheduleRow(SQLModel, table=True):
    """Workers move `last_slot` forward with a compare-and-set in the transaction that enqueues the slot's job:
    the one whose update matched enqueues it, the others see the slot taken."""

    __tablename__ = "jobqueue_schedules"

    name: str = Field(primary_key=True, max_length=200)
    last_slot: datetime = Field(sa_type=UTCDateTime)
