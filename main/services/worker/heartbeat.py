"""Keeps the leases of this worker's jobs alive on an interval of its own (JOBQUEUE_HEARTBEAT_INTERVAL), so
that no poll interval and no busy loop can let a healthy job be taken for dead; learns of cancel requests
and of leases lost meanwhile."""

from datetime import timedelta

import anyio
from sqlalchemy.exc import DBAPIError
from structlog.typing import FilteringBoundLogger

from main.clock import Clock
from main.db.engine import describe_database_error
from main.db.store import JobStore
from main.services.runner import StopReason
from main.services.worker.completer import Completer
from main.services.worker.executions import Executions


class Heartbeat:
    def __init__(self, store: JobStore, worker_id: str, clock: Clock, executions: Executions, completer: Completer,
                 log: FilteringBoundLogger, *, interval: float, lease_seconds: float) -> None:
        self.store, self.worker_id, self.clock, self.log = store, worker_id, clock, log
        self.executions, self.completer = executions, completer
        self.interval, self.lease_seconds = interval, lease_seconds

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            try:
                await self.beat()
            except DBAPIError as exc:
                self.log.error("heartbeat_failed", error=describe_database_error(exc),
                               note="retrying at the next beat; leases last JOBQUEUE_LEASE_SECONDS")

    async def beat(self) -> None:
        running = self.executions.snapshot()  # the executions this beat speaks for, not any claimed meanwhile
        job_ids = [*running, *self.completer.awaiting]
        if not job_ids:
            return
        lease_until = self.clock.now() + timedelta(seconds=self.lease_seconds)
        beat = await self.store.database.run(self.store.heartbeat, self.worker_id, job_ids, lease_until)
        for reason, job_ids_to_stop in ((StopReason.CANCELLED, beat.cancel_requested),
                                        (StopReason.LEASE_LOST, beat.lost)):
            for job_id in job_ids_to_stop:
                if job_id in running:  # an outcome already written counts as "lost": nothing to stop
                    running[job_id].stop(reason)
