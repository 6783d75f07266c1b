"""ContinuableJob: a job made of steps, each advancing a cursor, that resumes where it stopped.

    @job(name="ProcessOrdersJob")
    class ProcessOrdersJob(ContinuableJob[ProcessOrders]):
        async def perform(self, payload):
            await self.step(self.process_orders)        # skipped on resume once finished
            await self.step(self.notify)

        async def process_orders(self, step):
            async for order, cursor in self.enumerate.records(select(Order), cursor=step.cursor):
                self.atomically(lambda session: mark_processed(session, order))   # commits with the cursor
                await step.advance(cursor)               # item boundary: checkpoint, maybe stop

At every item boundary the job may be asked to stop: the worker is shutting down, the run has lasted
``max_run_time``, or a test planned it. It then writes its checkpoint and goes back to pending, and any worker
resumes it: finished steps are skipped and the current one continues after its last checkpointed item. Code
outside steps runs on every run.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
from sqlmodel import Session

from main.base.jobs.base_job import BaseJob, P
from main.base.jobs.context import JobContext
from main.base.jobs.continuation import cursor as cursor_codec
from main.base.jobs.continuation.checkpoint import (
    DEFAULT_CHECKPOINT_POLICY,
    Checkpoint,
    CheckpointPolicy,
    StepState,
)
from main.base.jobs.continuation.enumerators import Enumerators
from main.base.jobs.continuation.sinks import DbWrite, MemoryCheckpoints
from main.base.jobs.interrupts import SHUTDOWN
from main.db.engine import Database
from main.errors import (
    CheckpointWriteError,
    JobDefinitionError,
    JobInterrupted,
    MaxResumptionsExceededError,
)
from main.events.catalogue import EventType

_NEXT = object()
COMPLETED = "completed"  # the reason on_shutdown gets when the run completed the job
T = TypeVar("T")


class Step:
    """A step's state as its code sees it: the cursor to resume after, and `advance` to move it."""

    def __init__(self, job: "ContinuableJob[Any]", name: str, state: StepState) -> None:
        self.job, self.name, self._state = job, name, state

    @property
    def cursor(self) -> Any:
        """The last checkpointed cursor of this step; None before its first item."""
        return self._state.cursor

    @property
    def done(self) -> int:
        return self._state.done

    @property
    def total(self) -> int | None:
        return self._state.total

    @total.setter
    def total(self, value: int | None) -> None:
        self._state.total = value

    async def advance(self, cursor: Any = _NEXT) -> None:
        """Mark the current item done; the cursor moves to `cursor` (default: the old one + 1).

        The writes queued with ``atomically`` since the last advance become part of this item. This is an
        item boundary: the checkpoint may be written, and the job may stop here to be resumed later. A cursor
        that cannot be stored exactly (see continuation/cursor.py) fails the job at once: CursorError.
        """
        cursor = (self._state.cursor or 0) + 1 if cursor is _NEXT else cursor
        cursor_codec.encode(cursor, where=f"job {self.job.context.job_type!r}, step {self.name!r}")
        self._state.cursor = cursor
        self._state.done += 1
        await self.job._item_done(self)


class ContinuableJob(BaseJob[P]):
    """Base class of step-based resumable jobs (and of IterationJob). Tune with these class attributes."""

    checkpoint_policy: ClassVar[CheckpointPolicy] = DEFAULT_CHECKPOINT_POLICY
    max_run_time: ClassVar[float | None] = None  # seconds; then stop at the next item boundary and resume later
    max_resumptions: ClassVar[int] = 1000
    resume_errors_after_advancing: ClassVar[bool] = False  # an error after progress resumes instead of retrying

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.checkpoint_policy, CheckpointPolicy):
            raise JobDefinitionError(f"{cls.__qualname__}.checkpoint_policy must be a CheckpointPolicy")
        if cls.max_run_time is not None and not cls.max_run_time > 0:
            raise JobDefinitionError(f"{cls.__qualname__}.max_run_time must be a number of seconds > 0 or None")
        if not isinstance(cls.max_resumptions, int) or cls.max_resumptions < 0:
            raise JobDefinitionError(f"{cls.__qualname__}.max_resumptions must be an integer >= 0")

    def __init__(self, context: JobContext) -> None:
        super().__init__(context)
        self.database: Database = context.database or _default_database()
        self.checkpoints = context.checkpoints or MemoryCheckpoints(self.database)
        self.checkpoint = Checkpoint.model_validate(self.checkpoints.initial or {})
        self.enumerate = Enumerators(self.database, owner=f"job {context.job_type!r}")
        self._item_writes: list[DbWrite] = []  # queued by the item in progress
        self._done_writes: list[DbWrite] = []  # of items advanced since the last checkpoint
        self._run_started = time.monotonic()
        self._items_this_run = self._items_since_save = 0
        self._last_save = time.monotonic()
        self._advanced_this_run = False
        self._last_save_duration = 0.0
        self._failed_save: BaseException | None = None  # a checkpoint of this run that did not commit

    # -- the API of job code -----------------------------------------------------------------------------

    async def step(self, fn: Callable[[Step], Awaitable[None]], *, name: str | None = None,
                   isolated: bool = False) -> None:
        """Run `fn(step)` as the step `name` (default: the function's name), unless it finished in an earlier
        run. An isolated step always starts in a fresh run, so max_run_time does not squeeze it."""
        name = name or fn.__name__
        state = self.checkpoint.steps.get(name)
        if state is not None and state.finished:
            return
        if isolated and self._advanced_this_run:
            await self._interrupt(f"isolated step {name!r} starts in a fresh run")
        state = self.checkpoint.steps.setdefault(name, StepState())
        self.checkpoint.current = name
        step = Step(self, name, state)
        self.context.emit(EventType.STEP_STARTED, step=name, cursor=state.cursor)
        await self.on_step_start(step)
        await fn(step)
        state.finished = self._advanced_this_run = True
        await self._save()
        self.context.emit(EventType.STEP_COMPLETED, step=name, done=state.done)
        await self.on_step_complete(step)
        await self._stop_if_asked(step, finished=True)

    def atomically(self, write: DbWrite) -> None:
        """Queue `write(session)` to commit in the same transaction as the checkpoint covering this item."""
        self._item_writes.append(write)

    async def read(self, query: Callable[[Session], T]) -> T:
        """Run `query(session)` in a short transaction of its own: for counts and lookups, not for writes."""

        def run() -> T:
            with self.database.transaction() as session:
                return query(session)

        return await anyio.to_thread.run_sync(run)

    # -- hooks: override any of them ---------------------------------------------------------------------

    async def on_start(self) -> None:
        """The job's first run begins: once per job, whatever retries and resumptions follow."""

    async def on_resume(self) -> None:
        """A later run begins (a resumption or a retry), with the checkpoint of an earlier one."""

    async def on_shutdown(self, reason: str) -> None:
        """The run ends, its checkpoint saved: interrupted (`reason` says why; the job will be resumed) or
        completed (`reason` is "completed", and on_complete follows). Not called when the run fails with an
        error. As in job-iteration."""

    async def on_complete(self) -> None:
        """Every step is done (after on_shutdown)."""

    async def on_step_start(self, step: Step) -> None:
        """A step begins or resumes."""

    async def on_step_complete(self, step: Step) -> None:
        """A step finished."""

    # -- machinery ---------------------------------------------------------------------------------------

    async def invoke(self, payload: P) -> Any:
        self.payload = payload
        first_run = self.checkpoint.runs == 0 and self.context.attempt <= 1  # a crash leaves runs at 0
        self.checkpoint.runs += 1
        if not first_run and self.context.wants(EventType.JOB_RESUMED):
            summary = self.checkpoint.summary()
            self.context.emit(EventType.JOB_RESUMED, step=summary["step"], cursor=summary["cursor"],
                              done=summary["done"], resumptions=summary["resumptions"])
        await (self.on_start() if first_run else self.on_resume())
        try:
            result = await self._perform_keeping_progress(payload)
        except JobInterrupted as stop:
            await self.on_shutdown(stop.reason)
            raise
        await self._save()
        await self.on_shutdown(COMPLETED)
        await self.on_complete()
        return result

    async def _perform_keeping_progress(self, payload: P) -> Any:
        """`perform` under the timeout; whatever happens, the items that finished stay done."""
        try:
            return await super().invoke(payload)
        except JobInterrupted:
            raise
        except Exception as error:
            if self._failed_save is not None:
                raise  # nothing new can be saved: the retry resumes from the last committed checkpoint
            if self.resume_errors_after_advancing and self._advanced_this_run:
                self.context.log.warning("error_after_advancing_resumes", error=f"{type(error).__name__}: {error}")
                await self._interrupt(f"error after advancing: {type(error).__name__}: {error}")
            await self._save()  # keep the items that did finish; the retry resumes after them
            raise
        except BaseException:  # cancelled (shutdown timeout, cancel_job): keep what finished, then go on
            with anyio.CancelScope(shield=True):
                if self.context.stop.reason == SHUTDOWN:  # it will be resumed; a cancelled job will not
                    self._count_resumption(SHUTDOWN)
                if self._failed_save is None:
                    await self._save()
            raise

    async def _item_done(self, step: Step) -> None:
        self._done_writes += self._item_writes
        self._item_writes = []
        self._items_this_run += 1
        self._items_since_save += 1
        self._advanced_this_run = True
        if self.checkpoint_policy.due(self._items_since_save, time.monotonic() - self._last_save):
            await self._save()
        await self._stop_if_asked(step, finished=False)

    async def _stop_if_asked(self, step: Step, finished: bool) -> None:
        stop = self.context.stop
        if stop.reason:
            await self._interrupt(stop.reason)
        if self.max_run_time is not None and time.monotonic() - self._run_started >= self.max_run_time:
            await self._interrupt(f"max_run_time of {self.max_run_time:g}s reached")
        if stop.interrupt and stop.interrupt.due(step.name, step.cursor, self._items_this_run, finished):
            await self._interrupt("interrupt requested")

    async def _interrupt(self, reason: str) -> None:
        """Save and stop: the job goes back to pending and resumes from this checkpoint."""
        if self.checkpoint.resumptions >= self.max_resumptions:
            await self._save()
            raise MaxResumptionsExceededError(
                f"job {self.context.job_type!r} was interrupted {self.checkpoint.resumptions} times, its "
                f"max_resumptions; raise it if the job needs more runs (last reason: {reason})"
            )
        self._count_resumption(reason)
        await self._save()
        self.context.emit(EventType.JOB_PAUSED, reason=reason, **self.checkpoint.summary())
        raise JobInterrupted(reason)

    def _count_resumption(self, reason: str) -> None:
        self.checkpoint.resumptions += 1
        self.checkpoint.interrupted_by = reason

    async def _save(self) -> None:
        """Commit the checkpoint together with the writes of the items it covers, or neither.

        If the commit fails (a write raised, the lease is lost, the database is gone), the run saves no more:
        every later save raises CheckpointWriteError, even if job code swallowed the first error, so nothing
        can save a cursor past items whose writes never committed. The database keeps the last committed
        checkpoint, and the items after it run again when the job is retried or resumed.
        """
        if self._failed_save is not None:
            raise CheckpointWriteError(
                f"job {self.context.job_type!r}: an earlier checkpoint of this run failed to commit "
                f"({type(self._failed_save).__name__}: {self._failed_save}); the run stops, and the next resumes "
                "from the last committed checkpoint"
            ) from self._failed_save
        started = time.monotonic()
        writes, self._done_writes = self._done_writes, []
        self.checkpoint.saves += 1
        self.checkpoint.save_seconds += self._last_save_duration
        try:
            await self.checkpoints.save(self.checkpoint.model_dump(mode="json"), writes)
        except Exception as error:
            self._failed_save = error
            self.context.log.warning("checkpoint_not_saved", error=f"{type(error).__name__}: {error}",
                                     note="the items since the last checkpoint run again")
            raise
        except BaseException:  # cancelled before the save's thread started: nothing was committed
            self._done_writes = [*writes, *self._done_writes]
            raise
        self._items_since_save, self._last_save = 0, time.monotonic()
        self._last_save_duration = self._last_save - started  # recorded with the next save
        if self.context.wants(EventType.CHECKPOINT_SAVED):
            summary = self.checkpoint.summary()
            self.context.emit(EventType.CHECKPOINT_SAVED, step=summary["step"], cursor=summary["cursor"],
                              done=summary["done"], total=summary["total"], saves=self.checkpoint.saves)


def _default_database() -> Database:
    from main.services.job_queue import get_job_queue

    return get_job_queue().database
