"""Column types shared by the tables."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in Python, naive UTC in the database: the same stored form on every engine,
    so comparisons in SQL are plain comparisons of bound values."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class StoredJSON(TypeDecorator[Any]):
    """JSON that reads back whatever is stored: a value that is not JSON (a row edited by hand; SQLite keeps
    anything) comes back as its text instead of failing the whole read, so `jobs list` and `jobs show` can still
    display the row. The worker reads these columns on its own path (ClaimedJob.from_row)."""

    impl = JSON
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        decode = self.impl_instance.result_processor(dialect, coltype)
        if decode is None:
            return None

        def lenient(value: Any) -> Any:
            try:
                return decode(value)
            except (ValueError, RecursionError):
                return value

        return lenient


def naive_utc(value: datetime) -> datetime:
    """The stored form of an aware datetime (for statements that bypass SQLAlchemy's types: enqueue)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column; attach a timezone")
    return value.astimezone(UTC).replace(tzinfo=None)
