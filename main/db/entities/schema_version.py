"""One row recording which schema version the database holds, so later releases can migrate it."""

from sqlmodel import Field, SQLModel


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "jobqueue_schema"

    id: int = Field(default=1, primary_key=True)
    version: int
