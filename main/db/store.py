"""Every SQL statement the queue runs. The queue never writes SQL itself.

Methods are synchronous (the worker calls them in the engine's threads, ``Database.run``; sync application
code calls them directly) and each is one short transaction. Writes go through the write door, reads for
people through the read door. Outcome writes are guarded by ``worker_id`` and ``status = 'running'`` per
row: a worker whose lease expired cannot overwrite what another worker did since.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, update
from sqlmodel import Session, col, select

from main.db.engine import Database
from main.db.entities import TERMINAL_STATUSES, Job, JobStatus
from main.db.outcomes import Decision, Kind
from main.db.schema import ensure_schema
from main.errors import InvalidJobStateError, JobNotFoundError

# Hot-path statements (claim, heartbeat, outcomes) use the Core table: the ORM's bulk-update machinery
# would cost several times the SQL itself here. Reads for people (get, list) use the ORM entity.
jobs_table = Job.__table__


@dataclass(frozen=True)
class NewJob:
    """A validated job, ready to be written."""

    type: str
    payload: dict[str, Any]
    queue: str
    priority: int
    max_retries: int
    run_at: datetime


@dataclass(frozen=True)
class Heartbeat:
    """What a lease renewal learned about the worker's running jobs."""

    cancel_requested: frozenset[int]
    lost: frozenset[int]  # no longer ours: the lease expired and the job was recovered elsewhere


@dataclass(frozen=True)
class Recovered:
    """Jobs whose worker stopped renewing its lease, by what happened to them."""

    requeued: int
    failed: int
    cancelled: int

    @property
    def total(self) -> int:
        return self.requeued + self.failed + self.cancelled


class JobStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._schema_ready = False

    def ensure_schema(self) -> None:
        if not self._schema_ready:
            ensure_schema(self.database)
            self._schema_ready = True

    # -- enqueue ---------------------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """Insert all jobs in one transaction; ids come back in the order given."""
        if not jobs:
            return []
        rows = [
            {**job.__dict__, "status": JobStatus.PENDING, "created_at": now, "updated_at": now} for job in jobs
        ]
        self.ensure_schema()
        with self.database.connection() as connection:
            ids = self.database.dialect.insert_jobs(connection, rows)
            self.database.dialect.announce_new_jobs(connection)
        return ids

    # -- the worker's loop -----------------------------------------------------------------------------

    def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, now: datetime, lease_until: datetime,
        job_id: int | None = None,
    ) -> list[Job]:
        """Atomically move up to `limit` due pending jobs (of `queues`; only `job_id`, if given) to running
        for this worker, best first."""
        due = select(jobs_table.c.id).where(jobs_table.c.status == JobStatus.PENDING, jobs_table.c.run_at <= now)
        if queues:
            due = due.where(jobs_table.c.queue.in_(queues))
        if job_id is not None:
            due = due.where(jobs_table.c.id == job_id)
        due = (
            due.order_by(jobs_table.c.priority.desc(), jobs_table.c.run_at, jobs_table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite holds the write lock instead
        )
        claim = (
            update(jobs_table)
            .where(jobs_table.c.id.in_(due.scalar_subquery()))
            .values(
                status=JobStatus.RUNNING,
                attempts=jobs_table.c.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=lease_until,
                started_at=now,
                updated_at=now,
            )
            .returning(*jobs_table.c)
        )
        with self._connection() as connection:
            claimed = [Job.model_construct(**row._mapping) for row in connection.execute(claim)]
        return sorted(claimed, key=lambda job: (-job.priority, job.run_at, job.id or 0))

    def heartbeat(self, worker_id: str, job_ids: Sequence[int], lease_until: datetime) -> Heartbeat:
        """Renew the lease of this worker's running jobs; report cancel requests and lost jobs."""
        renew = (
            update(jobs_table)
            .where(jobs_table.c.id.in_(job_ids), *self._owned_by(worker_id))
            .values(lease_expires_at=lease_until)
            .returning(jobs_table.c.id, jobs_table.c.cancel_requested)
        )
        with self._connection() as connection:
            renewed: dict[int, bool] = dict(connection.execute(renew).all())  # type: ignore[arg-type]
        return Heartbeat(
            cancel_requested=frozenset(job_id for job_id, wanted in renewed.items() if wanted),
            lost=frozenset(job_ids).difference(renewed),
        )

    def record(self, worker_id: str, decisions: Sequence[Decision], now: datetime) -> set[int]:
        """Write the outcomes of many runs in one transaction: one statement per kind for the common outcomes
        (completed, released, cancelled), one per row for those that carry their own error text. Returns
        the ids that were written; the others are no longer this worker's (their lease was lost)."""
        by_kind: dict[Kind, list[Decision]] = {}
        for decision in decisions:
            by_kind.setdefault(decision.kind, []).append(decision)
        written: set[int] = set()
        with self._connection() as connection:
            for kind, group in by_kind.items():
                if kind in _SHARED_VALUES:
                    stmt = (update(jobs_table)
                            .where(jobs_table.c.id.in_([d.job_id for d in group]), *self._owned_by(worker_id))
                            .values(updated_at=now, **_FINISHED, **_SHARED_VALUES[kind](now))
                            .returning(jobs_table.c.id))
                    written.update(connection.scalars(stmt))
                    continue
                for decision in group:
                    one_row = (update(jobs_table)
                               .where(jobs_table.c.id == decision.job_id, *self._owned_by(worker_id))
                               .values(updated_at=now, **_FINISHED, **_row_values(decision, now)))
                    if connection.execute(one_row).rowcount == 1:  # type: ignore[attr-defined]
                        written.add(decision.job_id)
            if any(d.wakes_workers(now) and d.job_id in written for d in decisions):
                self.database.dialect.announce_new_jobs(connection)
        return written

    def save_checkpoint(
        self, job_id: int, worker_id: str, checkpoint: dict[str, Any], writes: Sequence[Callable[[Session], None]],
        now: datetime,
    ) -> bool:
        """Store a resumable job's checkpoint and apply the writes of the items it covers, in one transaction.
        False (and nothing written) if the job is no longer this worker's."""
        stmt = (
            update(jobs_table)
            .where(jobs_table.c.id == job_id, *self._owned_by(worker_id))
            .values(checkpoint=checkpoint, updated_at=now)
        )
        with self._transaction() as session:
            if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
                return False
            for write in writes:
                write(session)
        return True

    def recover_expired(self, now: datetime) -> Recovered:
        """Jobs whose worker died: cancelled if asked, failed if out of retries, else pending again."""
        expired = (jobs_table.c.status == JobStatus.RUNNING, jobs_table.c.lease_expires_at < now)
        lost = "worker " + jobs_table.c.worker_id + " stopped renewing its lease (crashed or killed)"
        with self._connection() as connection:

            def move(*where: ColumnElement[bool], **values: Any) -> int:
                stmt = update(jobs_table).where(*expired, *where)
                stmt = stmt.values(lease_expires_at=None, updated_at=now, **values)
                return connection.execute(stmt).rowcount  # type: ignore[attr-defined]

            cancelled = move(jobs_table.c.cancel_requested, status=JobStatus.CANCELLED, finished_at=now)
            failed = move(
                jobs_table.c.attempts > jobs_table.c.max_retries,
                status=JobStatus.FAILED,
                finished_at=now,
                last_error=lost + "; no retries left",
            )
            requeued = move(status=JobStatus.PENDING, run_at=now, last_error=lost)
            if requeued:
                self.database.dialect.announce_new_jobs(connection)
        return Recovered(requeued=requeued, failed=failed, cancelled=cancelled)

    # -- operations ------------------------------------------------------------------------------------

    def request_cancel(self, job_id: int, now: datetime) -> JobStatus:
        """Cancel a pending job now, or ask the worker running it to stop. Returns the job's new status."""
        with self._transaction() as session:
            job = self._get_for_update(session, job_id)
            if job.status == JobStatus.PENDING:
                job.status, job.finished_at = JobStatus.CANCELLED, now
            elif job.status == JobStatus.RUNNING:
                job.cancel_requested = True
            else:
                raise InvalidJobStateError(f"job {job_id} is already {job.status.value}; nothing to cancel")
            job.updated_at = now
            return job.status

    def retry_now(self, job_id: int, now: datetime) -> None:
        """Run a failed or cancelled job again from scratch, with its full retry budget."""
        with self._transaction() as session:
            job = self._get_for_update(session, job_id)
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise InvalidJobStateError(
                    f"job {job_id} is {job.status.value}; only failed or cancelled jobs can be retried"
                )
            job.status, job.attempts, job.run_at, job.updated_at = JobStatus.PENDING, 0, now, now
            job.finished_at = job.worker_id = job.lease_expires_at = None
            job.cancel_requested = False
            session.flush()
            self.database.dialect.announce_new_jobs(session.connection())

    def cleanup(self, finished_before: datetime) -> int:
        """Delete finished (completed, failed, cancelled) jobs older than the cut-off. Returns how many."""
        stmt = delete(jobs_table).where(
            jobs_table.c.status.in_(TERMINAL_STATUSES), jobs_table.c.finished_at < finished_before
        )
        with self._transaction() as session:
            return session.execute(stmt).rowcount  # type: ignore[attr-defined]

    def delete_jobs_of_types(self, job_types: Sequence[str]) -> int:
        """Delete every job of these types, whatever its status (the demo's `clean`)."""
        with self._transaction() as session:
            return session.execute(delete(jobs_table).where(jobs_table.c.type.in_(job_types))).rowcount  # type: ignore[attr-defined]

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self._read() as session:
            job = session.get(Job, job_id)
        if job is None:
            raise _not_found(job_id)
        return job

    def list_jobs(
        self, statuses: Sequence[JobStatus] = (), queue: str | None = None, limit: int = 50,
        types: Sequence[str] = (),
    ) -> list[Job]:
        """The newest jobs first, filtered by any of status, queue and type."""
        query = select(Job).order_by(col(Job.id).desc()).limit(limit)
        if statuses:
            query = query.where(col(Job.status).in_(statuses))
        if queue:
            query = query.where(Job.queue == queue)
        if types:
            query = query.where(col(Job.type).in_(types))
        with self._read() as session:
            return list(session.exec(query))

    def counts(self) -> list[tuple[JobStatus, str, int]]:
        """(status, queue, number of jobs) for every combination present."""
        query = select(Job.status, Job.queue, func.count()).group_by(col(Job.status), col(Job.queue))
        with self._read() as session:
            return [(JobStatus(status), queue, n) for status, queue, n in session.exec(query)]

    # -- helpers ---------------------------------------------------------------------------------------

    def _transaction(self) -> AbstractContextManager[Session]:
        self.ensure_schema()
        return self.database.transaction()

    def _connection(self) -> AbstractContextManager[Connection]:
        self.ensure_schema()
        return self.database.connection()

    def _read(self) -> AbstractContextManager[Session]:
        self.ensure_schema()
        return self.database.read()

    @staticmethod
    def _owned_by(worker_id: str) -> tuple[ColumnElement[bool], ...]:
        return (jobs_table.c.worker_id == worker_id, jobs_table.c.status == JobStatus.RUNNING)

    @staticmethod
    def _get_for_update(session: Session, job_id: int) -> Job:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            raise _not_found(job_id)
        return job


# Every outcome ends the run: no lease, no pending cancel request.
_FINISHED: dict[str, Any] = {"lease_expires_at": None, "cancel_requested": False}
# The outcomes whose values are the same for every row: one statement for a whole batch.
_SHARED_VALUES: dict[Kind, Callable[[datetime], dict[str, Any]]] = {
    Kind.COMPLETE: lambda now: {"status": JobStatus.COMPLETED, "finished_at": now},
    Kind.CANCEL: lambda now: {"status": JobStatus.CANCELLED, "finished_at": now,
                              "last_error": "cancelled while running"},
    Kind.RELEASE: lambda now: {"status": JobStatus.PENDING, "attempts": jobs_table.c.attempts - 1},
}


def _row_values(decision: Decision, now: datetime) -> dict[str, Any]:
    if decision.kind is Kind.RETRY:
        return {"status": JobStatus.PENDING, "run_at": decision.run_at, "last_error": decision.error,
                "last_traceback": decision.traceback}
    return {"status": JobStatus.FAILED, "finished_at": now, "last_error": decision.error,
            "last_traceback": decision.traceback}


def _not_found(job_id: int) -> JobNotFoundError:
    return JobNotFoundError(f"no job with id {job_id} (finished jobs are deleted after the retention period)")
