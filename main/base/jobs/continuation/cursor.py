"""Cursors as the checkpoint stores them: JSON, with a type tag where JSON has no type of its own.

A cursor comes back from the row exactly as it was given: a datetime as the same datetime, a Decimal as the
same Decimal, a tuple as a tuple. That is what lets a keyset over a datetime or UUID column resume with a
value of the column's type instead of a string the database compares wrongly (or refuses to compare).

    encode((datetime(2030, 1, 1, tzinfo=UTC), 42))
    -> {"$type": "tuple", "value": [{"$type": "datetime", "value": "2030-01-01T00:00:00+00:00"}, 42]}

A value of any other type fails at once with CursorError, naming the job, the step and the type.
"""

import base64
import math
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from main.errors import CursorError

TAG = "$type"
SUPPORTED = ("None, bool, int, float, str, datetime, date, time, Decimal, UUID, bytes, and lists, tuples and "
             "dicts with str keys of them")

# tag -> (the type it stands for, to text, from text); datetime before date: a datetime is a date too.
_TAGGED: dict[str, tuple[type, Callable[[Any], str], Callable[[str], Any]]] = {
    "datetime": (datetime, datetime.isoformat, datetime.fromisoformat),
    "date": (date, date.isoformat, date.fromisoformat),
    "time": (time, time.isoformat, time.fromisoformat),
    "decimal": (Decimal, str, Decimal),
    "uuid": (UUID, str, UUID),
    "bytes": (bytes, lambda raw: base64.b64encode(raw).decode("ascii"), base64.b64decode),
}


class _Unsupported(Exception):
    def __init__(self, value: object, why: str) -> None:
        super().__init__(why)
        self.value, self.why = value, why


def encode(value: Any, *, where: str) -> Any:
    """The JSON form of `value`; CursorError, naming `where` (the job and the step), if it would not come
    back exactly."""
    try:
        return _encode(value)
    except _Unsupported as problem:
        raise CursorError(
            f"{where}: the cursor {_short(value)} holds a value of type "
            f"{type(problem.value).__qualname__} that {problem.why}; a cursor is built of {SUPPORTED}. Use the "
            "object's key (e.g. its id) as the cursor instead"
        ) from None


def decode(stored: Any) -> Any:
    """The cursor `encode` was given. Plain JSON (a checkpoint of an older release) comes back as it is."""
    if isinstance(stored, list):
        return [decode(item) for item in stored]
    if isinstance(stored, dict):
        tag = stored.get(TAG)
        if tag is None:
            return {key: decode(item) for key, item in stored.items()}
        if tag == "tuple":
            return tuple(decode(item) for item in stored["value"])
        if tag == "dict":
            return {key: decode(item) for key, item in stored["value"].items()}
        return _TAGGED[tag][2](stored["value"])
    return stored


def _encode(value: Any) -> Any:
    # Exact types first: the common cursors (None, int, str) cost one dict lookup.
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is str:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Unsupported(value, f"is {value} (JSON has no NaN or infinity)")
        return value
    if isinstance(value, bool):
        raise _Unsupported(value, "is a subclass of bool")
    if isinstance(value, int | float | str):  # IntEnum, StrEnum, numpy.float64: the plain value compares equal
        plain = str.__str__(value) if isinstance(value, str) else int(value) if isinstance(value, int) else float(value)
        return _encode(plain)
    for tag, (tagged_type, to_text, _) in _TAGGED.items():
        if isinstance(value, tagged_type):
            return {TAG: tag, "value": to_text(value)}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, tuple):  # a named tuple comes back as a plain tuple, equal to it
        return {TAG: "tuple", "value": [_encode(item) for item in value]}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _Unsupported(value, "has keys that are not strings")
        encoded = {key: _encode(item) for key, item in value.items()}
        return {TAG: "dict", "value": encoded} if TAG in value else encoded
    raise _Unsupported(value, "cannot be stored so that it comes back as it was")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
