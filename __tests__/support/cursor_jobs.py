"""A table with a column of every cursor type, and resumable jobs that walk it or misbehave on purpose.

Every processed row is written to the processing log through `atomically`: the log's unique constraint turns
a row processed twice into a failed insert, and a row never written shows as missing.
"""

import contextlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import anyio
import anyio.to_thread
import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Field, Session, SQLModel, select

from __tests__.support.continuation_jobs import log_item
from main.base.jobs import job
from main.base.jobs.continuation import CheckpointPolicy, ContinuableJob, IterationJob, Step
from main.base.jobs.continuation.enumerators import Enumerator
from main.db.engine import Database
from main.db.store import jobs_table
from main.db.types import UTCDateTime


class KeyedRow(SQLModel, table=True):
    """Each value column repeats across rows, so (column, id) is the unique key a keyset needs."""

    __tablename__ = "keyed_rows"

    id: int = Field(primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)  # jobqueue's UTC column: naive UTC in the database
    at_tz: datetime = Field(sa_type=sa.DateTime(timezone=True))  # timestamptz on PostgreSQL
    day: date
    amount: Decimal = Field(sa_type=sa.Numeric(12, 2))
    ref: UUID = Field(sa_type=sa.Uuid)
    name: str = Field(max_length=50)
    n: int


KEY_COLUMNS = ["at", "at_tz", "day", "amount", "ref", "name", "n"]


def keyed_rows(count: int, distinct: int = 4) -> list[KeyedRow]:
    """`count` rows whose value columns take `distinct` values each, in an order unrelated to the id."""
    start = datetime(2030, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = []
    for row_id in range(1, count + 1):
        v = (row_id * 7) % distinct
        rows.append(KeyedRow(
            id=row_id, at=start + timedelta(minutes=v, microseconds=v), at_tz=start + timedelta(hours=v),
            day=date(2030, 1, 1) + timedelta(days=v), amount=Decimal(v * 125) / 100,
            ref=UUID(int=(v * 0x9E3779B97F4A7C15) % (1 << 128)), name=f"name-{v:03}", n=v - 2,
        ))
    return rows


def create_keyed_rows(database: Database, rows: list[KeyedRow]) -> None:
    with database.transaction() as session:
        KeyedRow.__table__.create(session.connection(), checkfirst=True)  # type: ignore[attr-defined]
        session.execute(sa.delete(KeyedRow))
        session.add_all(rows)


class Walk(BaseModel):
    column: str = "at"
    order: str = "asc"  # asc: (column, id); desc: (column desc, id desc); mixed: (column desc, id asc)
    batch_size: int = 3
    fail_writes: list[int] = []  # rows whose write raises the first time it is applied
    item_delay: float = 0.0
    steal_at: int | None = None  # after this row, another worker takes the job over (its lease expired)


class WalkKeyedRowsJob(IterationJob[Walk]):
    """Walks keyed_rows by the keyset the payload names; logs each row's id."""

    checkpoint_policy = CheckpointPolicy.every_item()  # the tests count on a checkpoint per row
    failed_once: ClassVar[set[int]] = set()  # rows whose failing write already failed (reset by the tests)
    iterated: ClassVar[int] = 0

    def build_enumerator(self, payload: Walk, cursor: Any) -> Enumerator:
        return self.enumerate.records(select(KeyedRow), cursor=cursor, order_by=walk_order(payload),
                                      batch_size=payload.batch_size)

    async def each_iteration(self, row: KeyedRow, payload: Walk) -> None:
        write = log_item(self.options.name, row.id, self.context.job_id)
        if row.id in payload.fail_writes and row.id not in self.failed_once:
            def failing(session: Session, row_id: int = row.id) -> None:
                self.failed_once.add(row_id)
                raise RuntimeError(f"write for row {row_id} failed")
            write = failing
        self.atomically(write)
        WalkKeyedRowsJob.iterated += 1
        await anyio.sleep(payload.item_delay)
        if row.id == payload.steal_at:
            await anyio.to_thread.run_sync(self._taken_over)

    def _taken_over(self) -> None:
        """What lease recovery followed by another worker's claim does to the row."""
        with self.database.transaction() as session:
            session.execute(sa.update(jobs_table).where(jobs_table.c.id == self.context.job_id)
                            .values(worker_id="another-worker"))


def walk_order(payload: Walk) -> list[Any]:
    column, row_id = getattr(KeyedRow, payload.column), KeyedRow.id
    return {"asc": [column, row_id], "desc": [column.desc(), row_id.desc()],
            "mixed": [column.desc(), row_id.asc()]}[payload.order]


def expected_order(rows: list[KeyedRow], payload: Walk) -> list[int]:
    """The ids in the order the keyset walks them, computed in Python."""
    def key(row: KeyedRow) -> Any:
        value = getattr(row, payload.column)
        return value.astimezone(UTC) if isinstance(value, datetime) else value

    by_id = sorted(rows, key=lambda row: row.id, reverse=payload.order == "desc")
    return [row.id for row in sorted(by_id, key=key, reverse=payload.order != "asc")]


@job(name="WalkKeyedRowsJob", max_retries=100, backoff="fixed", base_delay=1)
class WalkEveryItemJob(WalkKeyedRowsJob):
    pass


@job(name="WalkBatchedJob", max_retries=100, backoff="fixed", base_delay=1)
class WalkBatchedJob(WalkKeyedRowsJob):
    checkpoint_policy = CheckpointPolicy.every(3)


@job(name="WalkRarelyJob", max_retries=100, backoff="fixed", base_delay=1)
class WalkRarelyJob(WalkKeyedRowsJob):
    checkpoint_policy = CheckpointPolicy.every(1000)


class Nothing(BaseModel):
    pass


@job(name="NothingToDoJob", max_retries=3)
class NothingToDoJob(IterationJob[Nothing]):
    def build_enumerator(self, payload: Nothing, cursor: Any) -> None:
        return None

    async def each_iteration(self, item: Any, payload: Nothing) -> None:
        raise AssertionError("there is nothing to iterate")


class Opaque:
    """A cursor value that cannot be stored."""


@job(name="OpaqueCursorJob", max_retries=3)
class OpaqueCursorJob(IterationJob[Nothing]):
    def build_enumerator(self, payload: Nothing, cursor: Any) -> Enumerator:
        return [("first", Opaque())]

    async def each_iteration(self, item: Any, payload: Nothing) -> None:
        pass


class Selects(BaseModel):
    carries: str  # "order_by", "limit" or "offset"


@job(name="OwnOrderByJob", max_retries=3)
class OwnOrderByJob(IterationJob[Selects]):
    def build_enumerator(self, payload: Selects, cursor: Any) -> Enumerator:
        statement = select(KeyedRow)
        statement = {"order_by": statement.order_by(KeyedRow.name), "limit": statement.limit(5),
                     "offset": statement.offset(2)}[payload.carries]
        return self.enumerate.records(statement, cursor=cursor)

    async def each_iteration(self, item: Any, payload: Selects) -> None:
        pass


class TypedCursors(BaseModel):
    pass


# One cursor of each supported type, and tuples of them; the job advances through them one per item.
TYPED_CURSORS: list[Any] = [
    datetime(2030, 5, 17, 8, 30, 0, 250, tzinfo=UTC), datetime(2030, 5, 17, 8, 30), date(2030, 5, 17),
    Decimal("12.50"), UUID("12345678-1234-5678-1234-567812345678"), 42, "text", 2.5, True,
    (datetime(2030, 1, 1, tzinfo=UTC), 7), (Decimal("0.10"), ("nested", UUID(int=1))), ["a", 1],
    {"shard": 3, "after": date(2030, 1, 2)},
]


@job(name="TypedCursorStepsJob", max_retries=0)
class TypedCursorStepsJob(ContinuableJob[TypedCursors]):
    """Each run records the cursor it resumes from, exactly as the step sees it."""

    seen: ClassVar[list[Any]] = []

    async def perform(self, payload: TypedCursors) -> None:
        await self.step(self.walk)

    async def walk(self, step: Step) -> None:
        self.seen.append(step.cursor)
        start = 0 if step.cursor is None else TYPED_CURSORS.index(step.cursor) + 1
        for value in TYPED_CURSORS[start:]:
            await step.advance(value)


class Hooks(BaseModel):
    count: int = 3
    fail_at: int | None = None  # raise at this item on the first attempt


@job(name="HooksJob", max_retries=3, backoff="fixed", base_delay=1)
class HooksJob(IterationJob[Hooks]):
    calls: ClassVar[list[str]] = []

    def build_enumerator(self, payload: Hooks, cursor: Any) -> Enumerator:
        return self.enumerate.items(range(1, payload.count + 1), cursor=cursor)

    async def each_iteration(self, item: int, payload: Hooks) -> None:
        if item == payload.fail_at and self.context.attempt == 1:
            raise RuntimeError(f"item {item} failed")
        self.calls.append(f"item:{item}")

    async def on_start(self) -> None:
        self.calls.append("on_start")

    async def on_resume(self) -> None:
        self.calls.append("on_resume")

    async def on_shutdown(self, reason: str) -> None:
        self.calls.append(f"on_shutdown:{reason}")

    async def on_complete(self) -> None:
        self.calls.append("on_complete")


class Swallow(BaseModel):
    count: int = 6
    fail_write_at: int = 2


@job(name="SwallowingJob", max_retries=3, backoff="fixed", base_delay=1)
class SwallowingJob(ContinuableJob[Swallow]):
    """Swallows the error of a failed checkpoint and goes on: it must not get to save past the lost item."""

    checkpoint_policy = CheckpointPolicy.every_item()

    failed_once: ClassVar[bool] = False

    async def perform(self, payload: Swallow) -> None:
        await self.step(self.walk)

    async def walk(self, step: Step) -> None:
        for item in range((step.cursor or 0) + 1, self.payload.count + 1):
            write = log_item(self.options.name, item, self.context.job_id)
            if item == self.payload.fail_write_at and not SwallowingJob.failed_once:
                def failing(session: Session) -> None:
                    SwallowingJob.failed_once = True
                    raise RuntimeError("write failed")
                write = failing
            self.atomically(write)
            with contextlib.suppress(RuntimeError):  # the job's own bug: carry on as if nothing happened
                await step.advance(item)


JOBS = [WalkEveryItemJob, WalkBatchedJob, WalkRarelyJob, NothingToDoJob, OpaqueCursorJob, OwnOrderByJob,
        TypedCursorStepsJob, HooksJob, SwallowingJob]
