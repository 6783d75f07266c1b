"""Upkeep shared by all workers, each task on an interval of its own: requeue the jobs of workers that died
(every lease/2), forget the rows of workers that died (every lease) and delete old finished jobs (every
JOBQUEUE_CLEANUP_INTERVAL). All run once before the worker's first claim."""

from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
from sqlalchemy.exc import DBAPIError
from structlog.typing import FilteringBoundLogger

from main.clock import Clock
from main.db.engine import describe_database_error
from main.db.store import JobStore
from main.events import EventBus, EventType
from main.events.workflows import announce_advanced


class Maintenance:
    def __init__(self, store: JobStore, clock: Clock, events: EventBus, log: FilteringBoundLogger, *,
                 lease_seconds: float, cleanup_interval: float, retention: float) -> None:
        self.store, self.clock, self.events, self.log = store, clock, events, log
        self.lease_seconds, self.cleanup_interval, self.retention = lease_seconds, cleanup_interval, retention

    async def once(self) -> None:
        """One pass of each task: the worker runs it before its first claim."""
        for task in (self.recover_expired, self.forget_dead_workers, self.cleanup):
            await self._guarded(task)

    async def run(self) -> None:
        """Each task again after its interval, until cancelled."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._every, self.lease_seconds / 2, self.recover_expired)
            tasks.start_soon(self._every, self.lease_seconds, self.forget_dead_workers)
            tasks.start_soon(self._every, self.cleanup_interval, self.cleanup)

    async def recover_expired(self) -> None:
        recovered = await self.store.database.run(self.store.recover_expired, self.clock.now())
        for job in recovered.jobs:
            self.events.emit(EventType.JOB_RECOVERED, job_id=job.id, job_type=job.type, queue=job.queue,
                             attempt=job.attempts, outcome=job.outcome, previous_worker=job.worker_id)
        announce_advanced(self.events, recovered.advanced)

    async def forget_dead_workers(self) -> None:
        """Rows of workers that stopped beating without unregistering (killed, lost)."""
        dead_before = self.clock.now() - timedelta(seconds=self.lease_seconds)
        await self.store.database.run(self.store.prune_workers, dead_before)

    async def cleanup(self) -> None:
        cut_off = self.clock.now() - timedelta(seconds=self.retention)
        deleted = await self.store.database.run(self.store.cleanup, cut_off)
        if deleted:
            self.events.emit(EventType.CLEANUP_DONE, deleted=deleted, retention=self.retention)

    async def _every(self, interval: float, task: Callable[[], Awaitable[None]]) -> None:
        while True:
            await anyio.sleep(interval)
            await self._guarded(task)

    async def _guarded(self, task: Callable[[], Awaitable[None]]) -> None:
        try:
            await task()
        except DBAPIError as exc:  # an outage: the next pass tries again
            self.log.error("maintenance_failed", task=task.__name__, error=describe_database_error(exc))
