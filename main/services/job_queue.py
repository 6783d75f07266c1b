"""JobQueue: the facade and the process singleton: the registry of job classes, the enqueue path, the
operations (cancel, retry, cleanup, status), and ``run`` / ``stop`` for the worker.

One per process (``get_job_queue()``). The worker itself, its parts and their intervals, lives in
main/services/worker/; this class only starts and stops it.
"""

import json
import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from main.base.jobs import BaseJob, JobRequest, Schedule, Unique
from main.base.jobs.base_job import AppTransaction, model_document, refuse_on_event_loop, validate_payload
from main.base.jobs.continuation.checkpoint import checkpoint_summary
from main.base.jobs.interrupts import SHUTDOWN, Interrupt, StopSignal
from main.base.jobs.routing import integer_problem, queue_problem
from main.clock import Clock, ServerClock, SystemClock
from main.db.dialects import Channel
from main.db.engine import Database
from main.db.entities import TERMINAL_STATUSES, Job, JobStatus, WorkerRow
from main.db.rows import NO_KEYS, JobKeys, NewJob
from main.db.store import JobFilter, JobStore
from main.errors import (
    JobCancelledError,
    JobFailedError,
    JobQueueError,
    JobRegistrationError,
    JobRequestError,
    PayloadValidationError,
    ResultTimeoutError,
    SchedulingError,
)
from main.events import EventBus, EventType, Handler, Subscription
from main.events.log_lines import attach_log_lines
from main.events.workflows import announce_advanced
from main.log import get_logger
from main.services.propagation import Propagator
from main.services.registry import Registry, load_jobs_module, module_schedules
from main.services.runner import RunningJob, StopReason
from main.services.waker import Waker
from main.services.worker import Worker
from main.services.worker.executions import Executions
from main.settings import Settings
from main.workflows.batches import callback_specs
from main.workflows.definition import Workflow
from main.workflows.registry import Workflows, run_input_document

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


EVENTS_GRACE = 5.0  # seconds the events still in subscribers' mailboxes get when the worker stops


@dataclass(frozen=True)
class QueueStatus:
    """A snapshot for dashboards and `jobqueue status`: the database's view plus this process's."""

    worker_id: str
    uptime_seconds: float | None  # None when this process's worker is not running
    registered_types: list[str]
    counts_by_status: dict[str, int]
    counts_by_queue: dict[str, dict[str, int]]
    running: list[Job] = field(default_factory=list)
    workers: list[tuple[WorkerRow, int]] = field(default_factory=list)  # live workers, each with its running jobs
    paused_queues: dict[str, datetime] = field(default_factory=dict)  # no worker claims from these, since when

    @property
    def progress(self) -> dict[int, dict[str, Any]]:
        """Resumable running jobs by id: step, cursor, done, total, resumptions."""
        return {job.id: summary for job in self.running if job.id and (summary := checkpoint_summary(job.checkpoint))}


@dataclass(frozen=True)
class QueueInfo:
    """A queue as `jobqueue queues` shows it: its jobs by status, and whether (since when) it is paused."""

    name: str
    paused_at: datetime | None
    counts: dict[str, int]

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as `jobqueue schedules` shows it."""

    name: str
    schedule: Schedule
    last_slot: datetime | None  # the last slot a worker enqueued (or started the schedule at)
    next_slot: datetime


class JobQueue:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        jobs: Iterable[type[BaseJob[Any]]] | None = None,
        schedules: Iterable[Schedule] | None = None,
        workflows: Iterable[type[Workflow[Any]]] | None = None,
    ) -> None:
        """`jobs` and `schedules` default to the JOBS and SCHEDULES lists of ``settings.jobs_module``
        (JOBQUEUE_JOBS_MODULE); jobs declared with @job(cron=...) are scheduled too. `clock` replaces the time
        decisions are taken with (tests: a FrozenClock); by default it is the database's (ServerClock: on
        PostgreSQL the server's clock, read through this machine's)."""
        self.settings = settings or Settings.load()
        self.database = Database(self.settings.database_url, self.settings.pool_size,
                                 self.settings.transaction_pooler)
        self.store = JobStore(self.database)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.log = get_logger(worker_id=self.worker_id)
        self.events = EventBus(self.worker_id, self.log)
        attach_log_lines(self.events, self.log)
        self.clock: Clock = clock or ServerClock(SystemClock(), self.database.server_time, self._report_skew)
        for variable, closest in Settings.unknown_variables(os.environ).items():
            self.log.warning("unknown_setting_ignored", variable=variable, did_you_mean=closest)
        self.executions = Executions(self.settings.concurrency)
        self.propagator: Propagator | None = None  # carries a trace from enqueue to run (main/tracing.py)
        self.waker = Waker()
        self._stopping = self._interrupting = False
        self._started_at: float | None = None
        self.registry = Registry(self.settings.jobs_module)
        module = load_jobs_module(self.settings.jobs_module) if jobs is None else None
        for job_class in module.JOBS if module else jobs or ():
            self.register(job_class)
        for schedule in module_schedules(module) if schedules is None else schedules:
            self.add_schedule(schedule)
        self.workflows = Workflows(self.registry)
        self.store.step_payload = self.workflows.step_payload
        for workflow in getattr(module, "WORKFLOWS", ()) if workflows is None else workflows:
            self.workflows.register(workflow)

    # -- registry --------------------------------------------------------------------------------------

    def register(self, job_class: type[BaseJob[Any]]) -> None:
        """Make a job class runnable and enqueueable here (and schedule it, if it has a cron). Registering the same
        class twice is harmless."""
        self.registry.register(job_class)

    def add_schedule(self, schedule: Schedule) -> None:
        """Have the workers enqueue `schedule`'s job at each of its slots (see Registry.add_schedule)."""
        self.registry.add_schedule(schedule)

    @property
    def schedules(self) -> dict[str, Schedule]:
        """Every cron schedule, by name."""
        return self.registry.schedules

    def job_for_slot(self, schedule: Schedule, slot: datetime) -> NewJob:
        """The job a schedule's slot enqueues: keyed by the slot, so that `jobqueue jobs` shows which it ran for."""
        return self._prepare([JobRequest(schedule.job_class, schedule.payload,
                                         unique_key=f"{schedule.label}@{slot.isoformat()}")])[0]

    def registered_class(self, name: str) -> type[BaseJob[Any]] | None:
        return self.registry.get(name)

    def get_available_job_types(self) -> list[str]:
        return self.registry.names()

    def job_class(self, name: str) -> type[BaseJob[Any]]:
        """The registered class for a job name; an unknown name is an error listing the known ones."""
        return self.registry.require(name)

    # -- events ----------------------------------------------------------------------------------------

    def subscribe(self, pattern: EventType | str, handler: Handler, *, name: str | None = None,
                  buffer: int = 10_000, timeout: float = 10.0) -> Subscription:
        """Call `handler(event)` (sync or async) for each event `pattern` matches: an EventType, a name such as
        "job.failed", or a glob such as "job.*". Handlers never hold up a job: events wait in a mailbox of
        `buffer` events (dropped and counted beyond), an async handler is cancelled after `timeout` seconds, and
        one that raises is logged. The worker delivers them; elsewhere, inside `async with queue.events.delivering()`.
        """
        return self.events.subscribe(pattern, handler, name=name, buffer=buffer, timeout=timeout)

    def unsubscribe(self, subscription: Subscription) -> None:
        self.events.unsubscribe(subscription)

    def _enqueued(self, rows: Sequence[NewJob], ids: list[int]) -> list[int]:
        if self.events.wants(EventType.JOB_ENQUEUED):
            for row, job_id in zip(rows, ids, strict=True):
                self.events.emit(EventType.JOB_ENQUEUED, job_id=job_id, job_type=row.type, queue=row.queue,
                                 run_at=row.run_at)
        return ids

    # -- enqueue ---------------------------------------------------------------------------------------

    async def enqueue_many(self, requests: Sequence[JobRequest], *, session: AppTransaction | None = None,
                           ) -> list[int]:
        """Validate every request, then write them all in one transaction (the application's `session`, if
        given: see `enqueue_many_sync`). Returns ids in order."""
        if self._clock_is_stale():
            await anyio.to_thread.run_sync(self.sync_clock)
        rows = self._prepare(requests)
        if _is_async(session):
            from sqlalchemy.ext.asyncio import AsyncSession  # imported already by whoever made `session`

            connection = await session.connection() if isinstance(session, AsyncSession) else session
            # In SQLAlchemy's greenlet, where the async driver's DB-API adapter can be called like a sync one.
            return self._enqueued(rows, await connection.run_sync(self._enqueue_joining, rows))
        if session is not None:
            return self._enqueued(rows, self._enqueue_joining(session, rows))
        ids = await anyio.to_thread.run_sync(self.store.enqueue, rows, self.clock.now())
        self._wake_for(rows)
        return self._enqueued(rows, ids)

    def enqueue_many_sync(self, requests: Sequence[JobRequest], *, session: AppTransaction | None = None,
                          ) -> list[int]:
        """`enqueue_many` for sync code: blocks until committed. With `session` (a SQLAlchemy Session or
        Connection on the queue's database), the jobs are written in its transaction instead: they exist if and
        only if it commits, and workers hear of them (NOTIFY, the WAL file) only then."""
        if self._clock_is_stale():
            self.sync_clock()
        rows = self._prepare(requests)
        if session is not None:
            return self._enqueued(rows, self._enqueue_joining(session, rows))
        ids = self.store.enqueue(rows, self.clock.now())
        self._wake_for(rows)
        return self._enqueued(rows, ids)

    def _enqueue_joining(self, session: AppTransaction, rows: list[NewJob]) -> list[int]:
        if _is_async(session):
            raise JobRequestError(
                f"an {type(session).__name__} needs the async enqueue (await Job.perform_later(..., session=...)); "
                "the *_sync methods take a Session or Connection"
            )
        if not isinstance(session, Session | Connection):
            raise JobRequestError(
                f"session must be a SQLAlchemy Session, Connection, AsyncSession or AsyncConnection (of the "
                f"application's transaction), got {type(session).__name__}"
            )
        connection = session.connection() if isinstance(session, Session) else session
        if not self.database.dialect.same_database(connection.engine.url):
            raise JobRequestError(
                f"the session is connected to {connection.engine.url!r}, not to the queue's database "
                f"({self.database.engine.url!r}): no worker would see the job; enqueue without session= there"
            )
        if connection.dialect.paramstyle != self.database.engine.dialect.paramstyle:
            raise JobRequestError(
                f"the session's driver ({connection.dialect.driver}) cannot run the queue's insert; connect the "
                f"application through {self.database.engine.dialect.driver} to enqueue in its transaction, or "
                "enqueue after it commits"
            )
        return self.store.enqueue_joining(connection, rows, self.clock.now())

    def _prepare(self, requests: Sequence[JobRequest]) -> list[NewJob]:
        now = self.clock.now()
        carried = self.propagator.inject() if self.propagator else None
        trace_context = json.dumps(carried) if carried else None
        rows = []
        for request in requests:
            options = request.job_class._options()
            if self.registry.get(options.name) is not request.job_class:
                raise JobRegistrationError(
                    f"job {options.name!r} is not registered with this queue: add {request.job_class.__qualname__} "
                    f"to the JOBS list in {self.settings.jobs_module} (or call queue.register)"
                )
            queue = options.queue if request.queue is None else request.queue
            priority = options.priority if request.priority is None else request.priority
            if problem := queue_problem("queue", queue) or integer_problem("priority", priority):
                raise JobRequestError(f"cannot enqueue job {options.name!r}: {problem}")
            payload = validate_payload(request.job_class, request.payload)
            row = NewJob(type=options.name, payload=model_document(request.job_class, payload), queue=queue,
                         priority=priority, max_retries=options.max_retries, run_at=_run_at(request, now))
            if options.unique or options.concurrency or options.rate_limit or request.unique_key is not None:
                row = _with_keys(row, request, payload, now)
            if trace_context is not None:
                row = replace(row, keys=replace(row.keys or NO_KEYS, trace_context=trace_context))
            rows.append(row)
        return rows

    # -- workflows -------------------------------------------------------------------------------------

    async def start_workflow(self, workflow: type[Workflow[Any]], run_input: Any, *,
                             session: AppTransaction | None = None) -> int:
        """Write a run of `workflow` and all its steps in one transaction (the application's `session`, if given);
        the steps that wait for nothing are due at once. Returns the run's id."""
        if session is None:
            return await anyio.to_thread.run_sync(self.start_workflow_sync, workflow, run_input)
        return self.start_workflow_sync(workflow, run_input, session=session)

    def start_workflow_sync(self, workflow: type[Workflow[Any]], run_input: Any, *,
                            session: AppTransaction | None = None) -> int:
        registered = self.workflows.get(workflow.key_of() if isinstance(workflow, type) and issubclass(
            workflow, Workflow) else str(workflow))
        if registered is not workflow:
            raise JobRegistrationError(f"workflow {workflow!r:.80} is not registered with this queue: add it to the "
                                       f"WORKFLOWS list in {self.settings.jobs_module}")
        try:
            document = run_input_document(workflow, run_input)
        except ValidationError as exc:
            raise PayloadValidationError(f"input of workflow {workflow.key_of()}: {exc}") from None
        steps = self.workflows.plan(workflow, workflow.input_model.model_validate(run_input))
        connection = None
        if session is not None:
            connection = session.connection() if isinstance(session, Session) else session
        run_id, advanced = self.store.start_workflow(connection, workflow.key_of(), document,  # type: ignore[arg-type]
                                                     steps, self.clock.now())
        self.waker.wake()
        self.events.emit(EventType.WORKFLOW_STARTED, run_id=run_id, workflow=workflow.key_of(), steps=len(steps))
        announce_advanced(self.events, advanced)
        return run_id

    async def cancel_workflow(self, run_id: int) -> tuple[int, int]:
        return await anyio.to_thread.run_sync(self.cancel_workflow_sync, run_id)

    def cancel_workflow_sync(self, run_id: int) -> tuple[int, int]:
        """Cancel a running workflow run: steps still to run are cancelled, running ones stop (their workers learn of
        it within a heartbeat interval). Returns (cancelled, asked to stop)."""
        cancelled, asked, advanced = self.store.cancel_workflow(run_id, self.now())
        self.events.emit(EventType.WORKFLOW_CANCELLED, run_id=run_id, cancelled=cancelled, asked_to_stop=asked)
        announce_advanced(self.events, advanced)
        return cancelled, asked

    # -- batches ---------------------------------------------------------------------------------------

    async def start_batch(self, jobs: Sequence[JobRequest], *, on_success: JobRequest | None = None,
                          on_failure: JobRequest | None = None, on_complete: JobRequest | None = None,
                          session: AppTransaction | None = None) -> int:
        """Write a batch of jobs and its callbacks in one transaction (the application's `session`, if given): each
        callback job runs once, when the last job has ended (main/workflows/batches.py). Returns the batch's id."""
        start = partial(self.start_batch_sync, jobs, on_success=on_success, on_failure=on_failure,
                        on_complete=on_complete)
        if session is None:
            return await anyio.to_thread.run_sync(start)
        return start(session=session)

    def start_batch_sync(self, jobs: Sequence[JobRequest], *, on_success: JobRequest | None = None,
                         on_failure: JobRequest | None = None, on_complete: JobRequest | None = None,
                         session: AppTransaction | None = None) -> int:
        callbacks = callback_specs({"success": on_success, "failure": on_failure, "complete": on_complete})
        members = self._prepare(list(jobs))
        if keyed := next((row for row in members if row.keys and row.keys.unique_key is not None), None):
            raise JobRequestError(f"a batch cannot hold unique jobs ({keyed.type} has unique key "
                                  f"{keyed.keys.unique_key!r}): a duplicate would be left out and the batch would "  # type: ignore[union-attr]
                                  "wait for it forever; enqueue it on its own")
        connection = None
        if session is not None:
            connection = session.connection() if isinstance(session, Session) else session
        batch_id, advanced = self.store.start_batch(connection, members, callbacks,  # type: ignore[arg-type]
                                                    self.clock.now())
        self.waker.wake()
        announce_advanced(self.events, advanced)
        return batch_id

    # -- the worker ------------------------------------------------------------------------------------

    async def run(self, *, burst: bool = False, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until `stop()` is called (or, with `burst`, until nothing is due), then shut down gracefully."""
        if self._started_at is not None:
            raise JobQueueError("this JobQueue is already running; one worker per queue")
        # Before the first await: a stop (a signal) that comes while the worker starts up is kept, not cleared.
        self._stopping, self._interrupting, self._started_at = False, False, time.monotonic()
        self.waker.bind()
        try:
            await self.database.run(self.store.ensure_schema)
            async with self.events.delivering(grace=min(EVENTS_GRACE, self.settings.shutdown_timeout)):
                self.events.emit(EventType.WORKER_STARTED, types=self.get_available_job_types(),
                                 concurrency=self.settings.concurrency, queues=list(self.settings.queues) or "all",
                                 poll_interval=self.settings.poll_interval)
                try:
                    await Worker(self).run(burst=burst, task_status=task_status)
                finally:
                    self.events.emit(EventType.WORKER_STOPPED)
        finally:
            self.waker.unbind()
            self._started_at = None

    async def serve(self, *, burst: bool = False) -> None:
        """`run`, stopping gracefully on the first SIGTERM/SIGINT and at once on the second."""
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        self.log.info("signal_received", signal=signal.Signals(signum).name)
                        if self._stopping:
                            self.stop_now()
                        else:
                            self.stop()

            tg.start_soon(watch_signals)
            await self.run(burst=burst)
            tg.cancel_scope.cancel()

    async def start(self, task_group: TaskGroup) -> None:
        """Start the worker loop in `task_group`; returns once it is running. Pair with `stop()`."""
        await task_group.start(self.run)

    def stop(self) -> None:
        """Stop claiming; running jobs get JOBQUEUE_SHUTDOWN_TIMEOUT to finish, then go back to pending.
        Resumable jobs stop at their next item boundary and save their checkpoint."""
        self._stopping = True
        self.executions.request_stop(SHUTDOWN)
        self.waker.wake()

    @property
    def stopping(self) -> bool:
        """True once stop() was called (or a signal received) and until the next run."""
        return self._stopping

    def stop_now(self) -> None:
        """Stop claiming and interrupt running jobs at once; they go back to pending, no attempt counted. A
        `def perform` that does not return within a second is abandoned (see Worker._drain)."""
        self._interrupting = True
        self.stop()
        self.executions.stop_all(StopReason.SHUTDOWN)

    @property
    def interrupting(self) -> bool:
        """True once stop_now() was called (or a second signal received) and until the next run."""
        return self._interrupting

    async def work_one(self, job_id: int | None = None, *, interrupt: Interrupt | None = None) -> Job | None:
        """Claim one due job (job `job_id`, if given) and run it here to its outcome; returns its row after,
        or None if nothing was due. `interrupt` makes a resumable job stop where a test wants it to."""
        if self._clock_is_stale():
            await self.database.run(self.sync_clock)
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        claimed = await self.database.run(self.store.claim, self.worker_id, (), 1, now, lease_until, job_id=job_id)
        if not claimed:
            return None
        running = RunningJob(claimed[0], signal=StopSignal(interrupt))
        parts = Worker(self)  # its executor and completer, without starting the worker
        self.executions.add(running)
        await parts.executor.run(running)
        await parts.completer.flush()
        return await self.get_job(running.job.id)

    # -- operations (async, each with a blocking *_sync twin) -------------------------------------------

    async def cancel_job(self, job_id: int) -> JobStatus:
        """Cancel a pending job, or stop a running one (here at once; in another process within a poll interval)."""
        status = await anyio.to_thread.run_sync(self.cancel_job_sync, job_id)
        self.executions.stop(job_id, StopReason.CANCELLED)
        return status

    def cancel_job_sync(self, job_id: int) -> JobStatus:
        status, advanced = self.store.request_cancel(job_id, self.now())
        self.events.emit(EventType.JOB_CANCEL_REQUESTED, job_id=job_id, status=status.value)
        announce_advanced(self.events, advanced)
        return status

    async def retry_job(self, job_id: int) -> None:
        await anyio.to_thread.run_sync(self.retry_job_sync, job_id)
        self.waker.wake()

    def retry_job_sync(self, job_id: int) -> None:
        """Put a failed or cancelled job back to pending with a fresh retry budget."""
        self.store.retry_now(job_id, self.now())
        self.events.emit(EventType.JOB_RETRIED, job_id=job_id)

    def retry_jobs_sync(self, which: JobFilter) -> int:
        """Every failed or cancelled job `which` selects back to pending with a fresh retry budget (one
        statement; workers are woken). Returns how many."""
        retried = self.store.retry_matching(which, self.now())
        self.events.emit(EventType.JOBS_RETRIED, count=retried, **_described(which))
        return retried

    def cancel_jobs_sync(self, which: JobFilter) -> tuple[int, int]:
        """Cancel every pending job `which` selects and ask the running ones to stop (their workers do within a
        heartbeat interval). Returns (cancelled, asked to stop)."""
        cancelled, asked, advanced = self.store.cancel_matching(which, self.now())
        self.events.emit(EventType.JOBS_CANCELLED, cancelled=cancelled, asked_to_stop=asked, **_described(which))
        announce_advanced(self.events, advanced)
        return cancelled, asked

    async def cleanup(self, older_than: timedelta | None = None) -> int:
        return await anyio.to_thread.run_sync(self.cleanup_sync, older_than)

    def cleanup_sync(self, older_than: timedelta | None = None) -> int:
        """Delete completed, failed and cancelled jobs that finished longer ago than `older_than`
        (default JOBQUEUE_RETENTION). Returns how many were deleted."""
        retention = timedelta(seconds=self.settings.retention) if older_than is None else older_than
        deleted = self.store.cleanup(self.now() - retention)
        self.events.emit(EventType.CLEANUP_DONE, deleted=deleted, retention=retention.total_seconds())
        return deleted

    async def pause_queue(self, name: str) -> None:
        await anyio.to_thread.run_sync(self.pause_queue_sync, name)

    def pause_queue_sync(self, name: str) -> None:
        """No worker claims jobs of queue `name` until it is resumed (each notices within its poll interval);
        resumable jobs running in it checkpoint at their next item and go back to pending; others finish."""
        self.store.pause_queue(_checked_queue("pause", name), self.now())
        self.events.emit(EventType.QUEUE_PAUSED, queue=name)

    async def resume_queue(self, name: str) -> bool:
        resumed = await anyio.to_thread.run_sync(self.resume_queue_sync, name)
        self.waker.wake()
        return resumed

    def resume_queue_sync(self, name: str) -> bool:
        """Let workers claim from queue `name` again. False if it was not paused."""
        resumed = self.store.resume_queue(_checked_queue("resume", name))
        self.events.emit(EventType.QUEUE_RESUMED, queue=name, was_paused=resumed)
        return resumed

    async def list_queues(self) -> list[QueueInfo]:
        return await anyio.to_thread.run_sync(self.list_queues_sync)

    def list_queues_sync(self) -> list[QueueInfo]:
        """Every queue that has jobs or is paused, by name, with its jobs by status."""
        paused = self.store.paused_queues()
        counts: defaultdict[str, dict[str, int]] = defaultdict(lambda: {status.value: 0 for status in JobStatus})
        for status, queue, n in self.store.counts():
            counts[queue][status.value] = n
        return [QueueInfo(name, paused.get(name), counts[name]) for name in sorted({*counts, *paused})]

    def list_schedules_sync(self) -> list[ScheduleInfo]:
        """Every schedule, by name, with the last slot enqueued (None: no worker has seen it yet) and the next."""
        done, now = self.store.schedule_slots(), self.now()
        return [ScheduleInfo(name, schedule, done.get(name), schedule.next_slot(now))
                for name, schedule in sorted(self.schedules.items())]

    async def get_job(self, job_id: int) -> Job:
        return await anyio.to_thread.run_sync(self.store.get, job_id)

    async def result(self, job_id: int, *, timeout: float | None = None) -> Any:
        """Wait for job `job_id` to end and return what its perform returned (an instance of its result model,
        if it declares one; None if it returned nothing). A failed job raises JobFailedError with its stored
        error, a cancelled one JobCancelledError; ResultTimeoutError after `timeout` seconds (the job goes on).
        Woken by the database (NOTIFY on PostgreSQL, the WAL file on SQLite), else it looks every poll interval."""
        finished = Waker()
        finished.bind()
        try:
            with anyio.fail_after(timeout):
                async with anyio.create_task_group() as listener:
                    listener.start_soon(self.database.dialect.listen, Channel.FINISHED_JOBS,
                                        lambda due: finished.wake())
                    job = await self.get_job(job_id)
                    if job.status not in TERMINAL_STATUSES and not job.result_awaited:
                        await anyio.to_thread.run_sync(self.store.await_result, job_id)
                        job = await self.get_job(job_id)  # it may have ended before it was marked
                    while job.status not in TERMINAL_STATUSES:
                        await finished.wait(self.settings.poll_interval)
                        job = await self.get_job(job_id)
                    listener.cancel_scope.cancel()
        except TimeoutError:
            raise ResultTimeoutError(f"job {job_id} did not finish within {timeout:g}s; it goes on (ask again "
                                     "later)") from None
        finally:
            finished.unbind()
        return self._result_of(job)

    def result_sync(self, job_id: int, *, timeout: float | None = None) -> Any:
        """`result` for sync code: blocks the calling thread."""
        refuse_on_event_loop("result_sync", "await queue.result(...)")
        return anyio.run(partial(self.result, job_id, timeout=timeout))

    def _result_of(self, job: Job) -> Any:
        if job.status == JobStatus.FAILED:
            raise JobFailedError(job.id or 0, job.last_error)
        if job.status == JobStatus.CANCELLED:
            raise JobCancelledError(f"job {job.id} was cancelled: it has no result")
        job_class = self.registry.get(job.type)
        model = job_class._options().result if job_class else None
        return model.model_validate(job.result) if model is not None and job.result is not None else job.result

    async def get_status(self) -> QueueStatus:
        return await anyio.to_thread.run_sync(self.get_status_sync)

    def get_status_sync(self) -> QueueStatus:
        counts = self.store.counts()
        by_status: Counter[str] = Counter({status.value: 0 for status in JobStatus})
        by_queue: defaultdict[str, dict[str, int]] = defaultdict(dict)
        for status, queue, n in counts:
            by_status[status.value] += n
            by_queue[queue][status.value] = n
        return QueueStatus(
            worker_id=self.worker_id,
            uptime_seconds=None if self._started_at is None else time.monotonic() - self._started_at,
            registered_types=self.get_available_job_types(),
            counts_by_status=dict(by_status),
            counts_by_queue=dict(by_queue),
            running=self.store.list_jobs([JobStatus.RUNNING], limit=1000),
            workers=self.get_workers_sync(),
            paused_queues=self.store.paused_queues(),
        )

    def get_workers_sync(self) -> list[tuple[WorkerRow, int]]:
        """The live workers of the whole fleet (heard from within a lease), each with how many jobs it runs."""
        return self.store.live_workers(self.now() - timedelta(seconds=self.settings.lease_seconds))

    # -- time --------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The time decisions are taken with, its offset from the server's clock measured first if stale
        (blocking: a round trip at most once a minute)."""
        if self._clock_is_stale():
            self.sync_clock()
        return self.clock.now()

    def sync_clock(self) -> None:
        """Measure how far this machine's clock is from the database server's (blocking; a no-op for a clock
        given by the caller, and for SQLite)."""
        if isinstance(self.clock, ServerClock):
            self.clock.sync()

    def wake_when_due(self, run_at: datetime | None) -> None:
        """Have this process's worker claim at once and, if `run_at` is later, again when it is (a NOTIFY or an
        enqueue here announced jobs due then): they start when due, not at the next poll."""
        self.waker.wake_in(0 if run_at is None else (run_at - self.clock.now()).total_seconds())

    def _wake_for(self, rows: Sequence[NewJob]) -> None:
        if rows:
            self.wake_when_due(min(row.run_at for row in rows))

    def _clock_is_stale(self) -> bool:
        return isinstance(self.clock, ServerClock) and self.clock.stale

    def _report_skew(self, seconds: float) -> None:
        self.log.warning("clock_skew", seconds_behind_database=round(seconds, 3),
                         note="this machine's clock disagrees with the database server's; jobqueue decides time by "
                              "the server's, but fix NTP here: job code and logs still read this clock")

    def close(self) -> None:
        """Release database connections."""
        self.database.dispose()


def _described(which: JobFilter) -> dict[str, list[str]]:
    return {"statuses": [s.value for s in which.statuses], "types": list(which.types), "queues": list(which.queues)}


def _checked_queue(verb: str, name: object) -> str:
    if problem := queue_problem("the queue name", name):
        raise JobRequestError(f"cannot {verb} queue {name!r:.80}: {problem}")
    return name  # type: ignore[return-value]


def _is_async(session: object) -> TypeGuard["AsyncSession | AsyncConnection"]:
    """Whether `session` is an AsyncSession or AsyncConnection. Looked up, not imported: SQLAlchemy's asyncio
    module needs greenlet, which only applications that use it install; one that passes an async session has
    imported it already."""
    asyncio_extension = sys.modules.get("sqlalchemy.ext.asyncio")
    return asyncio_extension is not None and isinstance(
        session, asyncio_extension.AsyncSession | asyncio_extension.AsyncConnection
    )


def _with_keys(row: NewJob, request: JobRequest, payload: BaseModel, now: datetime) -> NewJob:
    """`row` with the keys and limits its job's options (and the request's unique_key) give it."""
    options, given = request.job_class._options(), request.unique_key
    unique = options.unique or (Unique() if given is not None else None)
    if given is not None and (not isinstance(given, str) or not given.strip()):
        raise JobRequestError(f"cannot enqueue job {options.name!r}: unique_key must be a non-empty string, got "
                              f"{given!r:.80}")
    concurrency, rate = options.concurrency, options.rate_limit
    try:
        keys = JobKeys(
            unique_key=unique.key_for(payload, row.payload, now, given) if unique else None,
            unique_scope=unique.scope if unique else None,
            raise_on_duplicate=bool(unique and unique.on_duplicate == "raise"),
            concurrency_key=concurrency.key_for(options.name, payload) if concurrency else None,
            concurrency_limit=concurrency.max if concurrency else None,
            rate_key=rate.key_for(options.name, payload) if rate else None,
            rate_limit=rate.limit if rate else None,
            rate_window=rate.per.total_seconds() if rate else None,
        )
    except Exception as exc:  # the application's key function, given this payload
        raise JobRequestError(f"cannot enqueue job {options.name!r}: a key function of its options (unique, "
                              f"concurrency, rate_limit) raised {type(exc).__name__}: {exc}") from exc
    return replace(row, keys=keys)


def _run_at(request: JobRequest, now: datetime) -> datetime:
    """When the job is due: checked to be a time every engine can store, in UTC, between the years 1 and 9999."""
    run_at, delay = request.run_at, request.delay
    if run_at is not None and delay is not None:
        raise SchedulingError("give either a run time or a delay, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise SchedulingError(f"run time must be a datetime, got {run_at!r:.120}")
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise SchedulingError(
                f"run time {run_at.isoformat()} has no timezone; pass an aware datetime such as "
                "datetime(2030, 1, 1, 2, 0, tzinfo=UTC)"
            )
        try:
            run_at.astimezone(UTC)
        except OverflowError:
            raise SchedulingError(f"run time {run_at.isoformat()} is out of range: in UTC it must fall between "
                                  "the years 1 and 9999") from None
        return run_at
    if delay is None:
        return now
    if isinstance(delay, bool) or not isinstance(delay, int | float | timedelta):
        raise SchedulingError(f"delay must be a number of seconds or a timedelta, got {delay!r:.120}")
    if isinstance(delay, int | float) and not math.isfinite(delay):
        raise SchedulingError(f"delay must be a finite number of seconds, got {delay!r}")
    try:
        delay = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)
        if delay < timedelta(0):
            raise SchedulingError(f"delay must not be negative, got {delay.total_seconds():g}s")
        return now + delay
    except OverflowError:
        raise SchedulingError(f"delay {delay} is too long: the run time would fall after the year 9999") from None


_instance: JobQueue | None = None
_instance_lock = threading.Lock()


def get_job_queue() -> JobQueue:
    """This process's queue, created on first use from JOBQUEUE_* settings and the jobs module."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = JobQueue()
        return _instance


def set_job_queue(queue: JobQueue) -> JobQueue:
    """Install `queue` as this process's queue (tests, or an app that builds its own Settings)."""
    global _instance
    with _instance_lock:
        _instance = queue
    return queue


def reset_job_queue() -> None:
    """Forget this process's queue (closing its connections); the next get_job_queue() builds a new one."""
    global _instance
    with _instance_lock:
        if _instance is not None:
            _instance.close()
        _instance = None
