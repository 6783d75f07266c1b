"""The worker: its parts in one task group, started together, stopped in order.

    producer      claims due jobs into free slots          (woken, or every poll interval)
    executor      runs each job in a free slot              (a long-lived task per slot)
    completer     writes outcomes in batches                (a few ms, or N outcomes)
    heartbeat     renews leases, learns of cancels          (JOBQUEUE_HEARTBEAT_INTERVAL)
    maintenance   recovers dead workers' jobs, prunes       (lease/2, JOBQUEUE_CLEANUP_INTERVAL)
    scheduler     enqueues the slots of cron schedules      (every second, or poll interval if shorter)
    listener      wakes the producer on NOTIFY / WAL change (the dialect's)

A part that dies takes the worker down with its error (the task group); a database outage does not: each
part waits it out and retries. Stopping: the producer stops claiming, running jobs get the shutdown timeout
(resumable ones stop at their next item), the rest are interrupted, the completer writes every outcome, and
only then do the side parts stop.
"""

import contextlib
import importlib.metadata
import os
import socket
from typing import TYPE_CHECKING

import anyio
from anyio import CapacityLimiter
from sqlalchemy.exc import DBAPIError

from main.db.dialects import Channel
from main.db.entities import WorkerRow
from main.services.runner import StopReason
from main.services.worker.completer import Completer
from main.services.worker.executor import Executor
from main.services.worker.heartbeat import Heartbeat
from main.services.worker.maintenance import Maintenance
from main.services.worker.producer import Producer
from main.services.worker.scheduler import Scheduler

if TYPE_CHECKING:
    from main.services.job_queue import JobQueue

SCHEDULER_INTERVAL = 1.0  # seconds between looks at the cron schedules: slots are a second apart at the finest

# Seconds that stopped jobs get to end before the threads of those that do not are abandoned.
ABANDON_AFTER = 1.0


def _version() -> str:
    try:
        return importlib.metadata.version("jobqueue")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown"


class Worker:
    def __init__(self, queue: "JobQueue") -> None:
        settings, store, clock, log = queue.settings, queue.store, queue.clock, queue.log
        self.queue, self.settings = queue, settings
        self.completer = Completer(store, queue.worker_id, clock, queue.wake_when_due, queue.events, log)
        self.threads = CapacityLimiter(settings.concurrency)  # sync jobs: never in the database's threads
        self.executor = Executor(queue.registered_class, store, queue.worker_id, clock, queue.executions,
                                 self.completer, queue.waker, self.threads, queue.events, queue.propagator)
        self.producer = Producer(store, queue.worker_id, clock, queue.executions, self.executor, self.completer,
                                 queue.waker, log, queues=settings.queues, poll_interval=settings.poll_interval,
                                 lease_seconds=settings.lease_seconds, stopping=lambda: queue.stopping)
        self.heartbeat = Heartbeat(store, queue.worker_id, clock, queue.executions, self.completer, queue.events, log,
                                   interval=settings.effective_heartbeat_interval, lease_seconds=settings.lease_seconds,
                                   sync_clock=queue.sync_clock)
        self.maintenance = Maintenance(store, clock, queue.events, log, lease_seconds=settings.lease_seconds,
                                       cleanup_interval=settings.cleanup_interval, retention=settings.retention)
        self.scheduler = Scheduler(store, clock, list(queue.schedules.values()), queue.job_for_slot, queue.events, log,
                                   interval=min(settings.poll_interval, SCHEDULER_INTERVAL))

    async def run(self, *, burst: bool = False, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        queue = self.queue
        await queue.database.run(queue.sync_clock)
        await self.maintenance.once()
        await self.scheduler.once()
        await queue.database.run(queue.store.register_worker, self._registration())
        try:
            await self._run_parts(burst, task_status)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(DBAPIError):  # if not, it expires
                await queue.database.run(queue.store.unregister_worker, queue.worker_id)

    def _registration(self) -> WorkerRow:
        now = self.queue.clock.now()
        return WorkerRow(id=self.queue.worker_id, host=socket.gethostname(), pid=os.getpid(),
                         queues=list(self.settings.queues), concurrency=self.settings.concurrency,
                         version=_version(), started_at=now, heartbeat_at=now)

    async def _run_parts(self, burst: bool, task_status: anyio.abc.TaskStatus[None]) -> None:
        queue = self.queue
        async with anyio.create_task_group() as side:
            side.start_soon(queue.database.dialect.listen, Channel.NEW_JOBS, queue.wake_when_due)
            side.start_soon(self.heartbeat.run)
            side.start_soon(self.maintenance.run)
            side.start_soon(self.scheduler.run)
            side.start_soon(self.completer.run)
            task_status.started()
            async with anyio.create_task_group() as jobs:
                jobs.start_soon(self.executor.run_slots, self.settings.concurrency)
                await self.producer.run(burst=burst)
                self.executor.close()
                await self._drain()
            await self.completer.flush()
            side.cancel_scope.cancel()

    async def _drain(self) -> None:
        """Let running jobs finish for up to the shutdown timeout (not after `stop_now`), then interrupt the rest;
        abandon the threads of `def perform`s that still do not return."""
        queue, executions = self.queue, self.queue.executions
        if executions:
            queue.log.info("worker_draining", running=len(executions), timeout=self.settings.shutdown_timeout)
        with anyio.move_on_after(self.settings.shutdown_timeout):
            while executions and not queue.interrupting:
                await queue.waker.wait(self.settings.poll_interval)
        executions.stop_all(StopReason.SHUTDOWN)
        with anyio.move_on_after(ABANDON_AFTER):
            while executions:
                await queue.waker.wait(ABANDON_AFTER)
        for running in executions.abandon():
            job = running.job
            queue.log.error("job_thread_abandoned", job_id=job.id, job_type=job.type, attempt=job.attempts,
                            note="its def perform did not return when stopped; the job goes back to pending and may "
                                 "still be running here until this process exits")
