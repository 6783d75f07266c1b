"""Enumerators: async iterators of ``(item, cursor)`` pairs, where `cursor` is what to resume after `item`.

``build_enumerator`` (IterationJob) and steps (ContinuableJob) take them from ``self.enumerate``; any iterable
or async iterable of ``(item, cursor)`` pairs is an enumerator too, so writing your own is a generator away.
Database reads happen in short transactions, one batch at a time: no transaction stays open between items.
"""

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import anyio.to_thread
from sqlalchemy import ColumnElement, Select, inspect, tuple_

from main.db.engine import Database

Pair = tuple[Any, Any]
Enumerator = AsyncIterable[Pair] | Iterable[Pair]


async def pairs(enumerator: Enumerator) -> AsyncIterator[Pair]:
    """Iterate a sync or async enumerator alike."""
    if isinstance(enumerator, AsyncIterable):
        async for pair in enumerator:
            yield pair
    else:
        for pair in enumerator:
            yield pair


class Enumerators:
    def __init__(self, database: Database) -> None:
        self.database = database

    def items(self, values: Sequence[Any], cursor: int | None = None) -> Iterable[Pair]:
        """A list or range; the cursor is how many items are done."""
        start = cursor or 0
        return ((values[index], index + 1) for index in range(start, len(values)))

    async def records(
        self, statement: Select[Any], cursor: Any = None, *, order_by: Sequence[Any] | None = None,
        batch_size: int = 100,
    ) -> AsyncIterator[Pair]:
        """Rows of a SQLModel select, by keyset on the primary key (or on `order_by`, a unique column list);
        the cursor is the last row's key (a list for several columns)."""
        key = _Keyset(statement, order_by)
        async for batch, _ in self.batches(statement, cursor, order_by=order_by, size=batch_size):
            for record in batch:
                yield record, key.of(record)

    async def batches(
        self, statement: Select[Any], cursor: Any = None, *, order_by: Sequence[Any] | None = None, size: int = 50,
    ) -> AsyncIterator[Pair]:
        """Lists of up to `size` rows; the cursor is the key of a batch's last row, so an interrupted job
        resumes at the next batch."""
        key = _Keyset(statement, order_by)
        while True:
            query = statement.order_by(None).order_by(*key.columns).limit(size)
            if cursor is not None:
                query = query.where(key.after(cursor))
            batch = await anyio.to_thread.run_sync(self._fetch, query)
            if not batch:
                return
            cursor = key.of(batch[-1])
            yield batch, cursor
            if len(batch) < size:
                return

    async def nested(
        self,
        outer: Callable[[Any], Enumerator],
        inner: Callable[[Any, Any], Enumerator],
        cursor: Sequence[Any] | None = None,
    ) -> AsyncIterator[Pair]:
        """For each outer item, the inner enumerator built from it: items are ``(outer_item, inner_item)``
        and the cursor is ``[outer cursor before this outer item, inner cursor]``, so a resumed job continues
        inside the right outer item, after the right inner one."""
        outer_cursor, inner_cursor = cursor if cursor is not None else (None, None)
        async for outer_item, outer_next in pairs(outer(outer_cursor)):
            async for inner_item, inner_next in pairs(inner(outer_item, inner_cursor)):
                yield (outer_item, inner_item), [outer_cursor, inner_next]
            outer_cursor, inner_cursor = outer_next, None

    def _fetch(self, query: Select[Any]) -> list[Any]:
        with self.database.transaction() as session:
            return list(session.scalars(query))


class _Keyset:
    """The unique, ordered key a select is paged by: the primary key, or the `order_by` columns."""

    def __init__(self, statement: Select[Any], order_by: Sequence[Any] | None) -> None:
        entity = statement.column_descriptions[0]["entity"]
        self.columns = list(order_by) if order_by else list(inspect(entity).primary_key)
        self._names = [column.key for column in self.columns]

    def of(self, record: Any) -> Any:
        """The cursor after `record`: its key value (a list for several columns)."""
        values = [getattr(record, name) for name in self._names]
        return values[0] if len(values) == 1 else values

    def after(self, cursor: Any) -> ColumnElement[bool]:
        if len(self.columns) == 1:
            return self.columns[0] > (cursor[0] if isinstance(cursor, list | tuple) else cursor)
        return tuple_(*self.columns) > tuple_(*cursor)
