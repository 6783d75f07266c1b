"""One row per item a demo job processed. The unique constraint makes a duplicate impossible to hide: an item
processed twice by the same job type fails the second insert instead of being silently counted twice."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import UTCDateTime


class ProcessingLog(SQLModel, table=True):
    __tablename__ = "processing_log"
    __table_args__ = (sa.UniqueConstraint("job_type", "kind", "item_key", name="uq_processing_log_item"),)

    id: int | None = Field(default=None, primary_key=True)
    job_type: str = Field(max_length=200)
    kind: str = Field(max_length=40)  # "order", "report-order", "email"
    item_key: str = Field(max_length=100)
    job_id: int | None = None
    processed_at: datetime = Field(sa_type=UTCDateTime)
