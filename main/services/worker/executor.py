"""Runs claimed jobs in slots: one long-lived task per slot (JOBQUEUE_CONCURRENCY of them) takes the next job
the producer handed over, with the log context bound to it, sync code in the worker's job threads, the retry
policy asked once, the decision handed to the completer and the slot freed at once.

Slots outlive their jobs because starting a task costs several times what running a no-op job does; each job
still gets a cancel scope of its own (cancel, timeout, lease lost, shutdown). A slot lets the event loop's other
tasks run at least every YIELD_AFTER seconds: jobs that never wait would otherwise keep the producer from starting
the next claim, and the completer from writing, until every job handed over had run.
"""

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import anyio
import anyio.lowlevel
import structlog
from anyio import CapacityLimiter

from main.base.jobs import BaseJob
from main.base.jobs.continuation.sinks import RowCheckpoints
from main.clock import Clock
from main.db.outcomes import Decision, Kind
from main.db.store import JobStore
from main.events import EventBus, EventType
from main.services.propagation import Propagator
from main.services.retry_policy import decide
from main.services.runner import Paused, RunningJob, run_job
from main.services.waker import Waker
from main.services.worker.completer import Completer, Finished
from main.services.worker.executions import Executions
from main.services.worker.handover import Handover

YIELD_AFTER = 0.0005  # seconds


def _unheard(decision: Decision) -> None:
    """No propagator: nobody is told how a run ended."""


class Executor:
    def __init__(self, job_class: Callable[[str], type[BaseJob[Any]] | None], store: JobStore, worker_id: str,
                 clock: Clock, executions: Executions, completer: Completer, waker: Waker,
                 threads: CapacityLimiter, events: EventBus, propagator: Propagator | None) -> None:
        self.job_class, self.store, self.worker_id, self.clock = job_class, store, worker_id, clock
        self.events, self.propagator = events, propagator
        self.executions, self.completer, self.waker, self.threads = executions, completer, waker, threads
        self._handover: Handover[RunningJob] = Handover()
        self._yielded_at = time.monotonic()

    def start(self, running: RunningJob) -> None:
        """Hand a claimed job to the next free slot; a job claimed ahead waits for one."""
        self._handover.put(running)

    def close(self) -> None:
        """No more jobs: the slots finish the jobs they run, then end; jobs claimed ahead that no slot took go
        back to pending untouched (their attempt not counted)."""
        for running in self._handover.close():
            self.executions.remove(running)
            self.completer.submit(Finished(running.job, Decision(running.job.id, Kind.RELEASE), 0.0,
                                           "worker shutting down: not started"))

    async def run_slots(self, slots: int) -> None:
        """Run `slots` slots until `close()` and until the jobs they run have ended."""
        async with anyio.create_task_group() as tg:
            for slot in range(slots):
                tg.start_soon(self._slot, name=f"slot {slot}")

    async def _slot(self) -> None:
        while (running := await self._handover.take()) is not None:
            await self.run(running)
            if time.monotonic() - self._yielded_at > YIELD_AFTER:
                self._yielded_at = time.monotonic()
                await anyio.lowlevel.checkpoint()

    async def run(self, running: RunningJob) -> None:
        job = running.job
        # Bound and reset by token: structlog's bound_contextvars() reads the whole context first, on every job.
        bound = structlog.contextvars.bind_contextvars(job_id=job.id, job_type=job.type, attempt=job.attempts)
        try:
            if self.events.wants(EventType.JOB_STARTED):
                self.events.emit(EventType.JOB_STARTED, job_id=job.id, job_type=job.type, queue=job.queue,
                                 attempt=job.attempts)
            started = time.monotonic()
            job_class = self.job_class(job.type)
            checkpoints = RowCheckpoints(self.store, job.id, self.worker_id, job.checkpoint, self.clock.now)
            with self.propagator.around(job) if self.propagator else nullcontext(_unheard) as settle:
                outcome = await run_job(running, job_class, self.store.database, checkpoints, self.threads,
                                        self.events)
                decision = decide(job, outcome, job_class.options.backoff if job_class else None, self.clock.now())
                settle(decision)
            note = f"paused: {outcome.reason}" if isinstance(outcome, Paused) else "worker shutting down"
            self.completer.submit(Finished(job, decision, time.monotonic() - started, note))
        finally:
            self.executions.remove(running)
            self.waker.wake()  # a slot is free
            structlog.contextvars.reset_contextvars(**bound)
