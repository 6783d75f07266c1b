"""Claims due jobs in batches, for the free slots and, while jobs are faster than a claim, ahead of them
(prefetch.py), and hands each to the executor.

It claims when woken (an enqueue here, a NOTIFY or WAL change from elsewhere, a slot freed, outcomes written, a
job announced for later now due) or every poll interval, and at once again while claims bring jobs and there is
room: a slot that frees up is refilled at once, and the next claim is under way while the slots run.
"""

from collections.abc import Callable, Sequence
from datetime import timedelta

import anyio
from sqlalchemy.exc import DBAPIError
from structlog.typing import FilteringBoundLogger

from main.base.jobs.backoff import outage_delay
from main.clock import Clock
from main.db.engine import describe_database_error
from main.db.store import JobStore
from main.errors import DatabaseUnusableError
from main.services.runner import RunningJob
from main.services.waker import Waker
from main.services.worker.completer import Completer
from main.services.worker.executions import Executions
from main.services.worker.executor import Executor
from main.services.worker.prefetch import Prefetch


class Producer:
    def __init__(self, store: JobStore, worker_id: str, clock: Clock, executions: Executions, executor: Executor,
                 completer: Completer, waker: Waker, log: FilteringBoundLogger, *, queues: Sequence[str],
                 poll_interval: float, lease_seconds: float, stopping: Callable[[], bool]) -> None:
        self.store, self.worker_id, self.clock, self.log = store, worker_id, clock, log
        self.executions, self.executor, self.completer, self.waker = executions, executor, completer, waker
        self.queues, self.poll_interval, self.lease_seconds = queues, poll_interval, lease_seconds
        self.stopping = stopping
        self.prefetch = Prefetch(executions.capacity)

    async def run(self, *, burst: bool = False) -> None:
        """Claim and start until stopping (or, with `burst`, until nothing is due and nothing is running)."""
        outage = 0  # consecutive claims that failed because the database was unreachable
        while not self.stopping():
            # Taken before claiming: a job that finishes while the claim runs may put itself back (a retry,
            # a pause) after the claim's snapshot.
            quiet = not self.executions and self.completer.idle
            try:
                claimed, outage = await self.claim(), 0
            except DBAPIError as exc:
                if not self.store.database.dialect.is_transient(exc):
                    raise DatabaseUnusableError(
                        f"the worker stops: {describe_database_error(exc)} (waiting will not fix this)"
                    ) from exc
                outage += 1
                await self._wait_out_outage(exc, outage)
                continue
            if burst and quiet and not claimed and not await self._due_but_held():
                return
            if not claimed or self.prefetch.room(len(self.executions)) <= 0:
                await self.waker.wait(self.poll_interval)

    async def claim(self) -> int:
        """Claim as many jobs as there is room for and hand each to the executor; returns how many."""
        limit = self.prefetch.batch(len(self.executions), self.executions.ended)
        if limit <= 0 or self.stopping():
            return 0
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        self.prefetch.claiming(self.executions.ended)
        claimed = await self.store.database.run(self.store.claim, self.worker_id, self.queues, limit, now, lease_until)
        self.prefetch.claimed()
        for job in claimed:
            running = RunningJob(job)
            self.executions.add(running)
            self.executor.start(running)
        return len(claimed)

    async def _due_but_held(self) -> bool:
        """Whether a job the claim could have taken is due: it skipped it because another transaction held its row
        for a moment (a heartbeat that locked it as it was released). A burst does not end on that."""
        return await self.store.database.run(self.store.due_unlimited, self.queues, self.clock.now())

    async def _wait_out_outage(self, error: DBAPIError, failures: int) -> None:
        """The database is unreachable: running jobs go on; retry with backoff, never crash the worker."""
        delay = outage_delay(self.poll_interval, failures)
        self.log.error("database_unavailable", error=describe_database_error(error), failures=failures, retry_in=delay)
        await self.store.database.run(self.store.database.relieve, error)
        with anyio.move_on_after(delay):  # wake-ups (new jobs, WAL changes, outcomes) do not cut the wait short
            while not self.stopping():
                await self.waker.wait(delay)
