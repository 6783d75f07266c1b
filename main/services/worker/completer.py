"""Collects the decisions of finished runs and writes them in batches: one transaction for up to
`batch_size` outcomes, after at most `linger` seconds. A job whose outcome waits here keeps its lease (the
heartbeat renews it), and a graceful stop writes everything collected before the worker exits.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy.exc import DBAPIError
from structlog.typing import FilteringBoundLogger

from main.base.jobs.backoff import outage_delay
from main.clock import Clock
from main.db.engine import describe_database_error
from main.db.outcomes import Decision, Kind
from main.db.rows import ClaimedJob
from main.db.store import JobStore
from main.events import EventBus, EventType
from main.events.workflows import announce_advanced

_EVENTS = {Kind.COMPLETE: EventType.JOB_COMPLETED, Kind.CANCEL: EventType.JOB_CANCELLED}  # those with no more fields


@dataclass(frozen=True, slots=True)
class Finished:
    job: ClaimedJob
    decision: Decision
    duration: float
    note: str | None = None  # why a job was released (a pause, a shutdown)


class Completer:
    def __init__(self, store: JobStore, worker_id: str, clock: Clock, wake: Callable[[datetime | None], None],
                 events: EventBus, log: FilteringBoundLogger, *, batch_size: int = 500, linger: float = 0.002) -> None:
        """`wake(when)` has the producer claim now, and again at `when` if that is later (`JobQueue.wake_when_due`):
        written outcomes release jobs (due now) and schedule retries (due later)."""
        self.store, self.worker_id, self.clock, self.wake, self.log = store, worker_id, clock, wake, log
        self.events = events
        self.batch_size, self.linger = batch_size, linger
        self._buffer: list[Finished] = []
        self._writing: list[Finished] = []
        self._arrived = anyio.Event()

    @property
    def awaiting(self) -> set[int]:
        """Jobs whose outcome is not written yet: still running in the database, so their leases are kept."""
        return {finished.job.id for finished in (*self._buffer, *self._writing)}

    @property
    def idle(self) -> bool:
        return not self._buffer and not self._writing

    def submit(self, finished: Finished) -> None:
        if finished.decision.kind is Kind.ABANDON:
            self._emit(EventType.JOB_LEASE_LOST, finished, detail="stopped: another worker owns the job now")
            return
        self._buffer.append(finished)
        self._arrived.set()

    async def run(self) -> None:
        """Write what arrives, a batch at a time, until cancelled. Outcomes that could not be written for a
        reason that may pass (the database is down or full) stay collected and are tried again, with backoff:
        meanwhile the heartbeat keeps their jobs' leases, so they neither run again nor fail as abandoned."""
        failures = 0
        while True:
            await self._arrived.wait()
            self._arrived = anyio.Event()
            if len(self._buffer) < self.batch_size:
                await anyio.sleep(self.linger)  # let the outcomes of the same moment join this batch
            if await self.flush(keep_on_transient_error=True):
                failures = 0
                continue
            failures += 1
            self._arrived.set()
            await anyio.sleep(outage_delay(self.linger, failures))

    async def flush(self, *, keep_on_transient_error: bool = False) -> bool:
        """Write everything collected so far (in batches of `batch_size`). False if a batch failed for a
        reason that may pass and was kept to be tried again (only with `keep_on_transient_error`)."""
        while self._buffer:
            self._writing, self._buffer = self._buffer[: self.batch_size], self._buffer[self.batch_size:]
            try:
                with anyio.CancelScope(shield=True):  # an acknowledged outcome is written, even at shutdown
                    kept = await self._write(self._writing, keep_on_transient_error)
            finally:
                self._writing = []
            if kept:
                return False
        self.wake(None)  # a released job may be due again
        return True

    async def _write(self, batch: list[Finished], keep_on_transient_error: bool) -> bool:
        """Write one batch; True if it failed for a reason that may pass and was put back."""
        decisions = [finished.decision for finished in batch]
        database = self.store.database
        try:
            followed = {f.job.id for f in batch if f.job.has_followers}
            recorded = await database.run(self.store.record, self.worker_id, decisions, self.clock.now(), followed)
        except DBAPIError as exc:
            if keep_on_transient_error and database.dialect.is_transient(exc):
                self._buffer[:0] = batch
                self.log.warning("job_outcomes_not_recorded_yet", jobs=len(batch), error=describe_database_error(exc),
                                 note="tried again; the jobs' leases are kept meanwhile")
                return True
            self.log.error("job_outcomes_not_recorded", jobs=[f.job.id for f in batch],
                           error=describe_database_error(exc), note="their leases expire and the jobs run again")
            return False
        retries: list[datetime] = []
        for finished in batch:
            written = finished.job.id in recorded.written
            self._announce(finished, written)
            if written and finished.decision.kind is Kind.RETRY and finished.decision.run_at is not None:
                retries.append(finished.decision.run_at)
        if retries:
            self.wake(min(retries))
        announce_advanced(self.events, recorded.advanced)
        return False

    def _announce(self, finished: Finished, written: bool) -> None:
        decision = finished.decision
        if not written:
            self._emit(EventType.JOB_LEASE_LOST, finished,
                       detail=f"its outcome ({decision.kind.value}) was not written: another worker owns the job now")
        elif decision.kind is Kind.RETRY:
            assert decision.run_at is not None
            self._emit(EventType.JOB_RETRY_SCHEDULED, finished, error=decision.error,
                       retry_in=round((decision.run_at - self.clock.now()).total_seconds(), 3),
                       retries_left=finished.job.max_retries - finished.job.attempts)
        elif decision.kind is Kind.FAIL:
            self._emit(EventType.JOB_FAILED, finished, error=decision.error)
        elif decision.kind is Kind.RELEASE:
            self._emit(EventType.JOB_RELEASED, finished, reason=finished.note)
        else:
            self._emit(_EVENTS[decision.kind], finished)

    def _emit(self, event_type: EventType, finished: Finished, **fields: object) -> None:
        if not self.events.wants(event_type):  # nobody listens (warning logs, no subscriber): build nothing
            return
        job = finished.job
        self.events.emit(event_type, job_id=job.id, job_type=job.type, queue=job.queue, attempt=job.attempts,
                         duration=round(finished.duration, 4), **fields)
