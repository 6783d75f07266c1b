"""Enumerators: async iterators of ``(item, cursor)`` pairs, where `cursor` is what to resume after `item`.

``build_enumerator`` (IterationJob) and steps (ContinuableJob) take them from ``self.enumerate``; any iterable
or async iterable of ``(item, cursor)`` pairs is an enumerator too, so writing your own is a generator away.
Database reads happen in short transactions, one batch at a time: no transaction stays open between items.
"""

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import anyio.to_thread
from sqlalchemy import ColumnElement, Select, and_, inspect, literal, or_, tuple_
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from main.db.engine import Database
from main.errors import EnumeratorError

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
    """The enumerator builders of one job (`owner` names it in error messages)."""

    def __init__(self, database: Database, owner: str = "this job") -> None:
        self.database, self.owner = database, owner

    def items(self, values: Sequence[Any], cursor: int | None = None) -> Iterable[Pair]:
        """A list or range; the cursor is how many items are done."""
        start = cursor or 0
        return ((values[index], index + 1) for index in range(start, len(values)))

    def records(
        self, statement: Select[Any], cursor: Any = None, *, order_by: Sequence[Any] | None = None,
        batch_size: int = 100,
    ) -> AsyncIterator[Pair]:
        """Rows of a SQLModel select, by keyset on the primary key (or on `order_by`: columns, each may be
        ``.desc()``, that end with a unique one); the cursor is the last row's key (a list for several columns).
        The select must not carry its own ORDER BY, LIMIT or OFFSET: the keyset sets them."""
        key = _Keyset.of_select(statement, order_by, self.owner, "records", batch_size)
        return self._records(statement, key, cursor, batch_size)

    def batches(
        self, statement: Select[Any], cursor: Any = None, *, order_by: Sequence[Any] | None = None, size: int = 50,
    ) -> AsyncIterator[Pair]:
        """Lists of up to `size` rows; the cursor is the key of a batch's last row, so an interrupted job
        resumes at the next batch."""
        key = _Keyset.of_select(statement, order_by, self.owner, "batches", size)
        return self._batches(statement, key, cursor, size)

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

    async def _records(self, statement: Select[Any], key: "_Keyset", cursor: Any, size: int) -> AsyncIterator[Pair]:
        async for batch, _ in self._batches(statement, key, cursor, size):
            for record in batch:
                yield record, key.of(record)

    async def _batches(self, statement: Select[Any], key: "_Keyset", cursor: Any, size: int) -> AsyncIterator[Pair]:
        page = statement.order_by(*key.order)
        while True:
            query = page.limit(size) if cursor is None else page.where(key.after(cursor)).limit(size)
            batch = await anyio.to_thread.run_sync(self._fetch, query)
            if not batch:
                return
            cursor = key.of(batch[-1])
            yield batch, cursor
            if len(batch) < size:
                return

    def _fetch(self, query: Select[Any]) -> list[Any]:
        with self.database.transaction() as session:
            return list(session.scalars(query))


@dataclass(frozen=True)
class _KeyColumn:
    column: ColumnElement[Any]
    attribute: str  # where a record holds its value
    descending: bool


# A cursor stored by an earlier release held these as text; they are read back as the column's type.
_FROM_TEXT: dict[type, Callable[[str], Any]] = {
    datetime: datetime.fromisoformat, date: date.fromisoformat, time: time.fromisoformat, Decimal: Decimal,
    UUID: UUID,
}


class _Keyset:
    """The unique, ordered key a select is paged by: the primary key, or the `order_by` columns."""

    def __init__(self, columns: list[_KeyColumn], owner: str) -> None:
        self.columns, self.owner = columns, owner
        self.order = [key.column.desc() if key.descending else key.column.asc() for key in columns]

    @classmethod
    def of_select(cls, statement: Select[Any], order_by: Sequence[Any] | None, owner: str, builder: str,
                  size: int) -> "_Keyset":
        """The keyset of `statement`; EnumeratorError, naming the job, for what cannot be paged by one."""
        where = f"{owner}: enumerate.{builder}()"
        if not isinstance(statement, Select):
            raise EnumeratorError(f"{where} takes a select(Model) statement, got {type(statement).__qualname__}")
        if statement._order_by_clauses:
            raise EnumeratorError(
                f"{where} was given a select with its own ORDER BY, which paging by keyset would replace: remove "
                ".order_by(...) from the select and pass order_by=[...] instead (ending with a unique column)"
            )
        if statement._limit_clause is not None or statement._offset_clause is not None:
            raise EnumeratorError(
                f"{where} was given a select with LIMIT or OFFSET, which cannot be paged by keyset: remove them "
                "(the batch size sets how many rows are read at a time), and narrow the rows with .where(...)"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise EnumeratorError(f"{where}: the batch size must be an integer >= 1, got {size!r}")
        descriptions = statement.column_descriptions
        entity = descriptions[0].get("entity") if len(descriptions) == 1 else None
        if entity is None:
            raise EnumeratorError(f"{where} pages rows of one model: select(Model), not columns or several models")
        mapper = inspect(entity)
        return cls([_key_column(item, mapper, where) for item in order_by or mapper.primary_key], owner)

    def of(self, record: Any) -> Any:
        """The cursor after `record`: its key value (a list for several columns)."""
        values = [getattr(record, key.attribute) for key in self.columns]
        for key, value in zip(self.columns, values, strict=True):
            if value is None:
                raise EnumeratorError(
                    f"{self.owner}: keyset column {key.attribute!r} is NULL in {record!r:.80}; a keyset cannot "
                    "page past NULL: filter those rows out with .where(...) or order by non-null columns"
                )
        return values[0] if len(values) == 1 else values

    def after(self, cursor: Any) -> ColumnElement[bool]:
        """Rows after `cursor` in key order; each value bound with its column's type."""
        values = list(cursor) if isinstance(cursor, list | tuple) else [cursor]
        if len(values) != len(self.columns):
            raise EnumeratorError(
                f"{self.owner}: the cursor {cursor!r:.80} has {len(values)} value(s) but the keyset has "
                f"{len(self.columns)} column(s) ({', '.join(key.attribute for key in self.columns)}); was order_by "
                "changed while the job had a checkpoint?"
            )
        bound = [literal(_from_text(value, key.column), type_=key.column.type)
                 for key, value in zip(self.columns, values, strict=True)]
        columns = [key.column for key in self.columns]
        directions = {key.descending for key in self.columns}
        if len(directions) == 1:  # one direction: a row-value comparison, which an index serves directly
            descending = directions.pop()
            left, right = (columns[0], bound[0]) if len(columns) == 1 else (tuple_(*columns), tuple_(*bound))
            return left < right if descending else left > right
        # Mixed directions: (a after x) OR (a = x AND b after y) OR ...
        return or_(*(
            and_(*(columns[j] == bound[j] for j in range(i)),
                 columns[i] < bound[i] if self.columns[i].descending else columns[i] > bound[i])
            for i in range(len(columns))
        ))


def _key_column(item: Any, mapper: Any, where: str) -> _KeyColumn:
    """An order_by entry (a column, ``col.asc()`` or ``col.desc()``) as a key column of the mapped entity."""
    descending = False
    if isinstance(item, UnaryExpression):
        if item.modifier not in (operators.asc_op, operators.desc_op):
            raise EnumeratorError(f"{where}: order_by entry {item} is not a column, col.asc() or col.desc()")
        descending, item = item.modifier is operators.desc_op, item.element
    column = inspect(item) if hasattr(item, "property") else item
    column = getattr(column, "expression", column)
    try:
        attribute = mapper.get_property_by_column(column).key
    except Exception:
        raise EnumeratorError(
            f"{where}: order_by entry {item} is not a column of {mapper.class_.__name__}, the model selected"
        ) from None
    return _KeyColumn(column, attribute, descending)


def _from_text(value: Any, column: ColumnElement[Any]) -> Any:
    sql_type = getattr(column.type, "impl_instance", column.type)  # a TypeDecorator says `object`; its impl knows
    try:
        python_type = sql_type.python_type
    except NotImplementedError:
        return value
    convert = _FROM_TEXT.get(python_type)
    return convert(value) if convert and isinstance(value, str) else value
