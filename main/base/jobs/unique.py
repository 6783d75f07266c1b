"""Unique jobs: `@job(unique=Unique(...))` makes a second enqueue of the same key a no-op that returns the first
job's id (or raises DuplicateJobError). The database enforces it with a partial unique index, so concurrent
enqueues from any number of threads and processes agree; nothing here reads before it writes."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from main.base.jobs.keys import key_text
from main.db.entities import JobStatus, UniqueScope

ACTIVE = (JobStatus.PENDING, JobStatus.RUNNING)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Unique:
    """key: the payload -> its key (str, int, or anything JSON can hold); None: the whole payload.
    while_: the statuses during which the key keeps duplicates out: pending and running (a job going back to
    pending for a retry keeps its key). period: instead, one job per key per window of this length (windows
    start at the Unix epoch), whatever became of it. on_duplicate: "return" the existing job's id, or "raise"
    DuplicateJobError."""

    key: Callable[[Any], object] | None = None
    while_: tuple[str, ...] = ACTIVE
    period: timedelta | None = None
    on_duplicate: Literal["return", "raise"] = "return"

    def problem(self) -> str | None:
        """What is wrong with these options, as a sentence; None if all is well."""
        if self.key is not None and not callable(self.key):
            return f"Unique(key=...) must be a function of the payload, got {self.key!r:.80}"
        if tuple(self.while_) != ACTIVE:
            return (f"Unique(while_={self.while_!r}) is not supported: a key is held while its job is pending or "
                    "running (the default), or for a period (Unique(period=timedelta(...)))")
        if self.period is not None and (not isinstance(self.period, timedelta) or self.period <= timedelta(0)):
            return f"Unique(period=...) must be a positive timedelta, got {self.period!r:.80}"
        if self.on_duplicate not in ("return", "raise"):
            return f"Unique(on_duplicate=...) must be 'return' or 'raise', got {self.on_duplicate!r:.80}"
        return None

    @property
    def scope(self) -> UniqueScope:
        return UniqueScope.ACTIVE if self.period is None else UniqueScope.PERIOD

    def key_for(self, payload: BaseModel, payload_json: str, now: datetime, given: str | None = None) -> str:
        """The stored key: `given` (perform_later(unique_key=...)), else the key function's, else the payload's
        digest; with a period, followed by the start of the window `now` falls in."""
        if given is not None:
            key = key_text(given)
        elif self.key is None:
            key = hashlib.sha256(payload_json.encode()).hexdigest()
        else:
            key = key_text(self.key(payload))
        if self.period is not None:
            windows = (now - _EPOCH) // self.period
            key = f"{key}@{(_EPOCH + windows * self.period).isoformat()}"
        return key
