"""Enumerators: lists and ranges, keyset over records (one column or several), batches, nested, custom."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from main.base.jobs.continuation.enumerators import Enumerators, pairs
from main.db.engine import Database
from main.db.entities import Order
from main.db.schema import ensure_schema
from main.demo.seed import create_tables

pytestmark = pytest.mark.anyio


@pytest.fixture
def enumerators(database_url: str) -> Enumerators:
    database = Database(database_url)
    ensure_schema(database)
    create_tables(database)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with database.transaction() as session:
        for n in range(1, 8):  # created_at repeats: (created_at, id) is the unique order
            session.add(Order(id=n, amount_cents=n * 100, created_at=start + timedelta(hours=n // 3)))
    return Enumerators(database)


async def collect(enumerator: Any) -> list[tuple[Any, Any]]:
    return [pair async for pair in pairs(enumerator)]


async def test_items_cursor_is_the_count_done(enumerators: Enumerators) -> None:
    assert await collect(enumerators.items(["a", "b", "c"])) == [("a", 1), ("b", 2), ("c", 3)]
    assert await collect(enumerators.items(range(10, 13), cursor=2)) == [(12, 3)]


async def test_records_by_primary_key_in_batches(enumerators: Enumerators) -> None:
    everything = await collect(enumerators.records(select(Order), batch_size=3))
    assert [cursor for _, cursor in everything] == [1, 2, 3, 4, 5, 6, 7]
    resumed = await collect(enumerators.records(select(Order).where(Order.amount_cents > 150), cursor=4, batch_size=2))
    assert [order.id for order, _ in resumed] == [5, 6, 7]


async def test_records_by_a_compound_key(enumerators: Enumerators) -> None:
    key = [Order.created_at, Order.id]
    everything = await collect(enumerators.records(select(Order), order_by=key, batch_size=2))
    assert [order.id for order, _ in everything] == [1, 2, 3, 4, 5, 6, 7]
    cursor = everything[3][1]
    assert isinstance(cursor, list) and cursor[1] == 4
    resumed = await collect(enumerators.records(select(Order), cursor=cursor, order_by=key, batch_size=2))
    assert [order.id for order, _ in resumed] == [5, 6, 7]


async def test_batches_resume_at_the_next_batch(enumerators: Enumerators) -> None:
    batches = await collect(enumerators.batches(select(Order), size=3))
    assert [[o.id for o in batch] for batch, _ in batches] == [[1, 2, 3], [4, 5, 6], [7]]
    resumed = await collect(enumerators.batches(select(Order), cursor=batches[0][1], size=3))
    assert [[o.id for o in batch] for batch, _ in resumed] == [[4, 5, 6], [7]]


async def test_nested_cursor_points_inside_the_outer_item(enumerators: Enumerators) -> None:
    def outer(cursor: Any) -> Any:
        return enumerators.items(["x", "y"], cursor)

    def inner(letter: str, cursor: Any) -> Any:
        return enumerators.items([f"{letter}1", f"{letter}2", f"{letter}3"], cursor)

    everything = await collect(enumerators.nested(outer, inner))
    assert [item for item, _ in everything] == [("x", "x1"), ("x", "x2"), ("x", "x3"), ("y", "y1"), ("y", "y2"),
                                                 ("y", "y3")]
    assert everything[4][1] == [1, 2]  # outer cursor before "y", inner cursor after "y2"
    resumed = await collect(enumerators.nested(outer, inner, cursor=everything[4][1]))
    assert [item for item, _ in resumed] == [("y", "y3")]


async def test_a_custom_enumerator_is_any_iterable_of_pairs(enumerators: Enumerators) -> None:
    async def countdown(cursor: int | None) -> Any:
        for n in range(cursor if cursor is not None else 3, 0, -1):
            yield f"T-{n}", n - 1

    assert await collect(countdown(None)) == [("T-3", 2), ("T-2", 1), ("T-1", 0)]
    assert await collect(countdown(1)) == [("T-1", 0)]
