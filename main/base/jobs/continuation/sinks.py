"""Where a resumable job's checkpoint goes: its own `jobs` row (under a worker), or memory (perform_now).

Either way, the database writes the job queued for the items it finished commit in the same transaction as
the checkpoint that records those items as done: exactly once, even across kill -9.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import anyio.to_thread
from sqlmodel import Session

from main.db.engine import Database
from main.db.store import JobStore
from main.errors import LeaseLostError

DbWrite = Callable[[Session], None]


class CheckpointSink(Protocol):
    initial: dict[str, Any] | None  # the checkpoint the run starts from

    async def save(self, checkpoint: dict[str, Any], writes: Sequence[DbWrite]) -> None:
        """Apply `writes` and store `checkpoint` in one transaction; LeaseLostError if the job is not ours."""
        ...


class RowCheckpoints:
    """The checkpoint lives in the job's row; writing it requires still owning the job."""

    def __init__(self, store: JobStore, job_id: int, worker_id: str, initial: dict[str, Any] | None,
                 now: Callable[[], datetime]) -> None:
        self.store, self.job_id, self.worker_id, self.initial, self._now = store, job_id, worker_id, initial, now

    async def save(self, checkpoint: dict[str, Any], writes: Sequence[DbWrite]) -> None:
        saved = await anyio.to_thread.run_sync(
            self.store.save_checkpoint, self.job_id, self.worker_id, checkpoint, writes, self._now()
        )
        if not saved:
            raise LeaseLostError(f"job {self.job_id} is no longer owned by {self.worker_id}; its lease expired")


class MemoryCheckpoints:
    """For perform_now: writes still commit (in their own transaction); the checkpoint stays in memory."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.initial: dict[str, Any] | None = None
        self.saved: list[dict[str, Any]] = []

    async def save(self, checkpoint: dict[str, Any], writes: Sequence[DbWrite]) -> None:
        if writes:
            await anyio.to_thread.run_sync(self._apply, writes)
        self.saved.append(checkpoint)

    def _apply(self, writes: Sequence[DbWrite]) -> None:
        with self.database.transaction() as session:
            for write in writes:
                write(session)
