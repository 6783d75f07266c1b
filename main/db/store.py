"""Every SQL statement the queue runs. The queue never writes SQL itself.

Methods are synchronous (the worker calls them in the engine's threads, ``Database.run``; sync application
code calls them directly) and each is one short transaction. Writes go through the write door, reads for
people through the read door. Outcome writes are guarded by ``worker_id`` and ``status = 'running'`` per
row: a worker whose lease expired cannot overwrite what another worker did since.
"""

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Update,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    update,
)
from sqlalchemy import (
    select as core_select,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from main.db import batch_members, followups, workflow_steps
from main.db.claim import PAUSED_QUEUES, PENDING, RUNNING, claim_statement, due_unlimited_statement
from main.db.dialects import Channel
from main.db.engine import Database
from main.db.entities import (
    TERMINAL_STATUSES,
    BatchRow,
    BatchStatus,
    Job,
    JobStatus,
    QueueRow,
    RunStatus,
    ScheduleRow,
    UniqueScope,
    WorkerRow,
    WorkflowEdge,
    WorkflowRun,
)
from main.db.followups import Advanced
from main.db.id_list import IdIn
from main.db.outcomes import Decision, Kind
from main.db.rows import ClaimedJob, NewJob
from main.db.schema import ensure_schema
from main.errors import InvalidJobStateError, JobNotFoundError, JobQueueError, JobRequestError

# Hot-path statements (claim, heartbeat, outcomes) use the Core table, built once with bound parameters so
# SQLAlchemy compiles each once: the ORM's machinery would cost several times the SQL itself here. Reads for
# people (get, list) use the ORM entity.
jobs_table = Job.__table__
workers_table = WorkerRow.__table__
queues_table = QueueRow.__table__
schedules_table = ScheduleRow.__table__
_runs, _edges, _batches = WorkflowRun.__table__, WorkflowEdge.__table__, BatchRow.__table__  # type: ignore[attr-defined]
ACTIVE = (JobStatus.PENDING, JobStatus.RUNNING)
# A job that may go back to pending without taking a unique key another job holds (what a bulk retry skips).
_holder = jobs_table.alias("holder")
_KEY_FREE = or_(
    jobs_table.c.unique_key.is_(None),
    jobs_table.c.unique_scope == UniqueScope.PERIOD.value,
    ~exists().where(_holder.c.type == jobs_table.c.type, _holder.c.unique_key == jobs_table.c.unique_key,
                    _holder.c.unique_scope == UniqueScope.ACTIVE.value, _holder.c.status.in_(ACTIVE)),
)


@dataclass(frozen=True)
class Heartbeat:
    """What a lease renewal learned about the worker's running jobs."""

    cancel_requested: frozenset[int]
    lost: frozenset[int]  # no longer ours: the lease expired and the job was recovered elsewhere
    paused: frozenset[int] = frozenset()  # in a queue that was paused: resumable ones stop at their next item


@dataclass(frozen=True)
class Recorded:
    """What a batch of outcomes wrote."""

    written: set[int]  # the jobs whose outcome was written (the others' leases were lost)
    advanced: Advanced  # the workflow runs and batches it moved on


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    due: int  # pending and due now
    scheduled: int  # pending, due later
    running: int
    oldest_due_at: datetime | None


@dataclass(frozen=True)
class RecoveredJob:
    """A job whose worker stopped renewing its lease, and what became of it: requeued, failed or cancelled."""

    id: int
    type: str
    queue: str
    attempts: int
    worker_id: str | None
    outcome: str
    has_followers: bool = False  # a workflow step or a batch's job (see main/db/followups.py)


@dataclass(frozen=True)
class Recovered:
    """Jobs whose worker stopped renewing its lease, by what happened to them."""

    jobs: list[RecoveredJob]
    advanced: Advanced = field(default_factory=Advanced)  # the workflow runs and batches it moved on

    def _count(self, outcome: str) -> int:
        return sum(job.outcome == outcome for job in self.jobs)

    @property
    def requeued(self) -> int:
        return self._count("requeued")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def cancelled(self) -> int:
        return self._count("cancelled")

    @property
    def total(self) -> int:
        return len(self.jobs)


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a bulk operation acts on: any of these statuses, types and queues (empty: any)."""

    statuses: tuple[JobStatus, ...]
    types: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()

    def only(self, *allowed: JobStatus, verb: str) -> None:
        """Refuse statuses the operation cannot act on, naming those it can."""
        if not self.statuses:
            raise JobRequestError(f"say which jobs to {verb}: --status {' or '.join(s.value for s in allowed)}")
        if wrong := [status.value for status in self.statuses if status not in allowed]:
            raise InvalidJobStateError(f"cannot {verb} {', '.join(wrong)} jobs; only "
                                       f"{' or '.join(s.value for s in allowed)} ones")

    def conditions(self) -> list[ColumnElement[bool]]:
        found = [jobs_table.c.status.in_([status.value for status in self.statuses])]
        if self.types:
            found.append(jobs_table.c.type.in_(self.types))
        if self.queues:
            found.append(jobs_table.c.queue.in_(self.queues))
        return found


class JobStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._schema_ready = False
        self.step_payload: workflow_steps.PayloadFor = _no_workflows  # set by the queue that registers workflows

    def ensure_schema(self) -> None:
        if not self._schema_ready:
            ensure_schema(self.database)
            self._schema_ready = True

    # -- enqueue ---------------------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """Insert all jobs in one transaction (and tell idle workers); ids come back in the order given."""
        if not jobs:
            return []
        self.ensure_schema()
        with self.database.driver_transaction() as cursor:
            return self.database.dialect.insert_jobs(cursor, jobs, now)

    def enqueue_joining(self, connection: Connection, jobs: Sequence[NewJob], now: datetime) -> list[int]:
        """Insert the jobs in the transaction of `connection` (an application's): they exist if and only if it
        commits, and workers elsewhere hear of them (NOTIFY) only then."""
        if not jobs:
            return []
        self.ensure_schema()
        with self.database.joined_cursor(connection) as cursor:
            return self.database.dialect.insert_jobs(cursor, jobs, now)

    # -- the worker's loop -----------------------------------------------------------------------------

    def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, now: datetime, lease_until: datetime,
        job_id: int | None = None,
    ) -> list[ClaimedJob]:
        """Atomically move up to `limit` due pending jobs (of `queues`; only `job_id`, if given) to running
        for this worker, best first. They start together, so their order within the batch is not kept."""
        stmt = claim_statement(self.database.dialect, bool(queues), job_id is not None)
        params = {"w_id": worker_id, "now": now, "lease_until": lease_until, "limit": limit,
                  "queues": list(queues), "job_id": job_id}
        with self._connection() as connection:
            return [ClaimedJob.from_row(row) for row in connection.execute(stmt, params)]

    def due_unlimited(self, queues: Sequence[str], now: datetime) -> bool:
        """Whether a due job without limits waits in `queues` (all: empty), whoever holds its row this moment."""
        with self._read() as session:
            return bool(session.execute(due_unlimited_statement(bool(queues)),
                                        {"now": now, "queues": list(queues)}).scalar())

    def heartbeat(self, worker_id: str, job_ids: Sequence[int], lease_until: datetime) -> Heartbeat:
        """Renew the lease of this worker's running jobs; report cancel requests and lost jobs."""
        with self._connection() as connection:
            rows = connection.execute(_RENEW, {"ids": list(job_ids), "w_id": worker_id, "lease_until": lease_until})
            renewed = {job_id: (cancel, paused) for job_id, cancel, paused in rows}
        return Heartbeat(
            cancel_requested=frozenset(job_id for job_id, (cancel, _) in renewed.items() if cancel),
            lost=frozenset(job_ids).difference(renewed),
            paused=frozenset(job_id for job_id, (_, paused) in renewed.items() if paused),
        )

    def record(self, worker_id: str, decisions: Sequence[Decision], now: datetime,
               followed: Collection[int] = ()) -> Recorded:
        """Write the outcomes of many runs in one transaction: one statement per kind for the common outcomes
        (completed, released, cancelled), one per row for those that carry their own error text. Returns
        which were written (the others are no longer this worker's: their lease was lost). `followed`: the jobs whose
        end moves something on (workflow steps, batches' jobs): it moves in the same transaction."""
        by_kind: dict[Kind, list[int]] = {}
        for decision in decisions:
            by_kind.setdefault(decision.kind, []).append(decision.job_id)
        written: set[int] = set()
        awaited = False  # whether a job that ended here has someone waiting for its result (await_result)
        with self._connection() as connection:
            results = [{"job_id": d.job_id, "w_id": worker_id, "value": d.result} for d in decisions
                       if d.kind is Kind.COMPLETE and d.result is not None]
            if results or len(by_kind) > 1 or by_kind.keys() & _FINISH_ONE.keys():  # more than one statement:
                connection.execute(_LOCKED_IN_ORDER, {"ids": [d.job_id for d in decisions], "w_id": worker_id})
            if results:  # before the batch's COMPLETE, while the rows are still this worker's
                connection.execute(_SET_RESULT, results)
            for kind, job_ids in by_kind.items():
                if kind in _FINISH_MANY:
                    for job_id, result_awaited in connection.execute(_FINISH_MANY[kind], {
                            "ids": job_ids, "w_id": worker_id, "now": now}):
                        written.add(job_id)
                        awaited |= bool(result_awaited) and kind in _ENDS
            for decision in decisions:
                if decision.kind in _FINISH_ONE:
                    params = {"job_id": decision.job_id, "w_id": worker_id, "now": now, "retry_at": decision.run_at,
                              "error": decision.error, "traceback": decision.traceback}
                    for _, result_awaited in connection.execute(_FINISH_ONE[decision.kind], params):
                        written.add(decision.job_id)
                        awaited |= bool(result_awaited) and decision.kind in _ENDS
            advanced = followups.after_jobs_ended(
                connection, [d.job_id for d in decisions if d.kind is Kind.COMPLETE and d.job_id in followed
                             and d.job_id in written],
                [d.job_id for d in decisions if d.kind in _STOPS_A_RUN and d.job_id in followed
                 and d.job_id in written],
                now, self.step_payload) if followed else _NOTHING_MOVED
            if advanced.released or any(d.wakes_workers(now) and d.job_id in written for d in decisions):
                self.database.dialect.announce(connection, Channel.NEW_JOBS)
            if awaited:  # not for every batch: NOTIFY serialises the commits of every session that sends one
                self.database.dialect.announce(connection, Channel.FINISHED_JOBS)
        return Recorded(written, advanced)

    def await_result(self, job_id: int) -> None:
        """Mark a job as awaited (queue.result()): when it ends, its worker announces it on FINISHED_JOBS."""
        with self._connection() as connection:
            connection.execute(update(jobs_table).where(jobs_table.c.id == _checked_id(job_id),
                                                        jobs_table.c.result_awaited.is_(None))
                               .values(result_awaited=True))

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
        expired = (RUNNING, jobs_table.c.lease_expires_at < now)
        lost = "worker " + jobs_table.c.worker_id + " stopped renewing its lease (crashed or killed)"
        c = jobs_table.c
        with self._connection() as connection:

            def move(outcome: str, *where: ColumnElement[bool], **values: Any) -> list[RecoveredJob]:
                stmt = update(jobs_table).where(*expired, *where)
                stmt = stmt.values(lease_expires_at=None, updated_at=now, **values)
                stmt = stmt.returning(c.id, c.type, c.queue, c.attempts, c.worker_id, _HAS_FOLLOWERS)
                return [RecoveredJob(id_, type_, queue, attempts, worker, outcome, bool(followed))
                        for id_, type_, queue, attempts, worker, followed in connection.execute(stmt)]

            cancelled = move("cancelled", c.cancel_requested, status=JobStatus.CANCELLED, finished_at=now)
            failed = move(
                "failed",
                c.attempts > c.max_retries,
                status=JobStatus.FAILED,
                finished_at=now,
                last_error=lost + "; no retries left",
            )
            requeued = move("requeued", status=JobStatus.PENDING, run_at=now, last_error=lost)
            advanced = _NOTHING_MOVED
            if followed := [job.id for job in (*failed, *cancelled) if job.has_followers]:
                # a step that died for good: its run cannot go on past it; a batch's job: its batch may settle
                advanced = followups.after_jobs_ended(connection, [], followed, now, self.step_payload)
            if requeued or advanced.released:
                self.database.dialect.announce(connection, Channel.NEW_JOBS)
            if failed or cancelled:
                self.database.dialect.announce(connection, Channel.FINISHED_JOBS)
        return Recovered([*requeued, *failed, *cancelled], advanced)

    # -- operations ------------------------------------------------------------------------------------

    def request_cancel(self, job_id: int, now: datetime) -> tuple[JobStatus, Advanced]:
        """Cancel a pending job now, or ask the worker running it to stop. Returns the job's new status and what
        its end moved on (a step: what waits for it can no longer run; a batch's job: the batch may settle)."""
        advanced = _NOTHING_MOVED
        with self._transaction() as session:
            job = self._get_for_update(session, job_id)
            if job.status == JobStatus.PENDING:
                job.status, job.finished_at = JobStatus.CANCELLED, now
                if job.has_followers:
                    session.flush()
                    advanced = followups.after_jobs_ended(session.connection(), [], [job_id], now, self.step_payload)
                    if advanced.released:
                        self.database.dialect.announce(session.connection(), Channel.NEW_JOBS)
                self.database.dialect.announce(session.connection(), Channel.FINISHED_JOBS)
            elif job.status == JobStatus.RUNNING:
                job.cancel_requested = True
            else:
                raise InvalidJobStateError(f"job {job_id} is already {job.status.value}; nothing to cancel")
            job.updated_at = now
            return job.status, advanced

    def retry_now(self, job_id: int, now: datetime) -> None:
        """Run a failed or cancelled job again from scratch, with its full retry budget; refused while another job
        holds its unique key."""
        try:
            self._retry_now(job_id, now)
        except IntegrityError:
            job = self.get(job_id)
            with self._read() as session:
                holder = session.exec(select(Job.id).where(Job.type == job.type, Job.unique_key == job.unique_key,
                                                           col(Job.status).in_(ACTIVE))).first()
            raise InvalidJobStateError(
                f"job {job_id} cannot run again now: job {holder} holds its unique key {job.unique_key!r} (pending "
                "or running); retry it once that one has ended") from None

    def _retry_now(self, job_id: int, now: datetime) -> None:
        with self._transaction() as session:
            job = self._get_for_update(session, job_id)
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise InvalidJobStateError(
                    f"job {job_id} is {job.status.value}; only failed or cancelled jobs can be retried"
                )
            if job.workflow_run_id is not None and (
                    waiting := workflow_steps.unfinished_dependencies(session.connection(), job_id)):
                listed = ", ".join(f"{name!r} ({status})" for name, status in waiting)
                raise InvalidJobStateError(
                    f"job {job_id} is step {job.workflow_step!r} of workflow run {job.workflow_run_id}, which waits "
                    f"for {listed}: retry that step instead; this one runs again once it has completed")
            if (batch_id := batch_members.fans_out(session.connection(), job_id)) is not None:
                raise InvalidJobStateError(
                    f"job {job_id} is step {job.workflow_step!r}, which ran as batch {batch_id}; retry the batch's "
                    f"failed or cancelled jobs instead (jobqueue batches show {batch_id} lists them): the step and "
                    "its run go on when the batch settles")
            job.status, job.attempts, job.run_at, job.updated_at = JobStatus.PENDING, 0, now, now
            job.finished_at = job.worker_id = job.lease_expires_at = None
            job.cancel_requested = False
            session.flush()
            followups.after_jobs_retried(session.connection(), [(job_id, job.workflow_run_id, job.batch_id)], now)
            self.database.dialect.announce(session.connection(), Channel.NEW_JOBS)

    def count_matching(self, which: JobFilter) -> int:
        with self._read() as session:
            return session.exec(select(func.count()).select_from(Job).where(*which.conditions())).one()

    def retry_matching(self, which: JobFilter, now: datetime) -> int:
        """`retry_now` for every failed or cancelled job `which` selects, in one statement. Returns how many."""
        which.only(JobStatus.FAILED, JobStatus.CANCELLED, verb="retry")
        stmt = update(jobs_table).where(*which.conditions(), _KEY_FREE, _NOT_FANNED_OUT,
                                        workflow_steps.ready_to_retry()).values(
            status=JobStatus.PENDING, attempts=0, run_at=now, updated_at=now, finished_at=None, worker_id=None,
            lease_expires_at=None, cancel_requested=False).returning(jobs_table.c.id, jobs_table.c.workflow_run_id,
                                                                     jobs_table.c.batch_id)
        try:
            with self._connection() as connection:
                rows = connection.execute(stmt).all()
                followups.after_jobs_retried(connection, [tuple(row) for row in rows], now)
                retried = len(rows)
                if retried:
                    self.database.dialect.announce(connection, Channel.NEW_JOBS)
        except IntegrityError:
            raise InvalidJobStateError("some of these jobs share a unique key, and only one job may hold it: nothing "
                                       "was retried; retry them one by one (jobqueue jobs retry ID)") from None
        return retried

    def cancel_matching(self, which: JobFilter, now: datetime) -> tuple[int, int, Advanced]:
        """`request_cancel` for every pending or running job `which` selects, in one transaction. Returns (how many
        were cancelled, how many running ones were asked to stop, what their ends moved on)."""
        which.only(JobStatus.PENDING, JobStatus.RUNNING, verb="cancel")
        pending = (*which.conditions(), PENDING)
        running = (*which.conditions(), RUNNING, jobs_table.c.cancel_requested.is_(False))
        with self._connection() as connection:
            rows = connection.execute(update(jobs_table).where(*pending).values(
                status=JobStatus.CANCELLED, finished_at=now, updated_at=now)
                .returning(jobs_table.c.id, _HAS_FOLLOWERS)).all()
            cancelled = len(rows)
            advanced = _NOTHING_MOVED
            if followed := [job_id for job_id, has_followers in rows if has_followers]:
                advanced = followups.after_jobs_ended(connection, [], followed, now, self.step_payload)
                if advanced.released:
                    self.database.dialect.announce(connection, Channel.NEW_JOBS)
            asked = connection.execute(update(jobs_table).where(*running).values(
                cancel_requested=True, updated_at=now)).rowcount  # type: ignore[attr-defined]
            if cancelled:
                self.database.dialect.announce(connection, Channel.FINISHED_JOBS)
        return cancelled, asked, advanced

    def cleanup(self, finished_before: datetime) -> int:
        """Delete finished (completed, failed, cancelled) jobs older than the cut-off, but not the steps of a run
        or the jobs of a batch still going (they are what it counts); then the runs, batches and edges left without
        jobs. Returns how many jobs were deleted."""
        c = jobs_table.c
        stmt = delete(jobs_table).where(
            c.status.in_(TERMINAL_STATUSES), c.finished_at < finished_before,
            or_(c.workflow_run_id.is_(None), c.workflow_run_id.not_in(
                core_select(_runs.c.id).where(_runs.c.status == RunStatus.RUNNING))),
            or_(c.batch_id.is_(None), c.batch_id.not_in(
                core_select(_batches.c.id).where(_batches.c.status == BatchStatus.RUNNING))),
        )
        with self._connection() as connection:
            deleted = connection.execute(stmt).rowcount
            if deleted:
                connection.execute(delete(_runs).where(_runs.c.finished_at < finished_before,
                                                       ~exists().where(c.workflow_run_id == _runs.c.id)))
                connection.execute(delete(_batches).where(_batches.c.finished_at < finished_before,
                                                          ~exists().where(c.batch_id == _batches.c.id)))
                connection.execute(delete(_edges).where(~exists().where(c.id == _edges.c.to_job_id)))
            return deleted

    def delete_jobs_of_types(self, job_types: Sequence[str]) -> int:
        """Delete every job of these types, whatever its status (the demo's `clean`)."""
        with self._transaction() as session:
            return session.execute(delete(jobs_table).where(jobs_table.c.type.in_(job_types))).rowcount  # type: ignore[attr-defined]

    # -- queues ----------------------------------------------------------------------------------------

    def pause_queue(self, name: str, now: datetime) -> None:
        """Stop every worker from claiming jobs of queue `name` (it need not have any yet); already paused: kept
        as it was. Two processes pausing a new queue at once both succeed."""
        try:
            with self._connection() as connection:
                paused = connection.execute(update(queues_table).where(queues_table.c.name == name)
                                            .values(paused_at=func.coalesce(queues_table.c.paused_at, now)))
                if paused.rowcount == 0:  # type: ignore[attr-defined]
                    connection.execute(insert(queues_table).values(name=name, paused_at=now))
        except IntegrityError:  # the other process inserted it first: paused all the same
            self.pause_queue(name, now)

    def resume_queue(self, name: str) -> bool:
        """Let workers claim from queue `name` again (and wake them). False if it was not paused."""
        with self._connection() as connection:
            resumed = connection.execute(update(queues_table).where(queues_table.c.name == name,
                                                                   queues_table.c.paused_at.is_not(None))
                                         .values(paused_at=None)).rowcount  # type: ignore[attr-defined]
            if resumed:
                self.database.dialect.announce(connection, Channel.NEW_JOBS)
        return bool(resumed)

    def paused_queues(self) -> dict[str, datetime]:
        """Paused queues, each with when it was paused."""
        with self._read() as session:
            rows = session.exec(select(QueueRow).where(col(QueueRow.paused_at).is_not(None))).all()
        return {row.name: row.paused_at for row in rows if row.paused_at is not None}

    # -- schedules -------------------------------------------------------------------------------------

    def schedule_slots(self) -> dict[str, datetime]:
        """The last slot each schedule enqueued (or started from), by schedule name."""
        with self._read() as session:
            return {row.name: row.last_slot for row in session.exec(select(ScheduleRow))}

    def start_schedule(self, name: str, slot: datetime) -> None:
        """Record a schedule seen for the first time as having done `slot`: it starts with the next one. Another
        worker that got there first wins; its slot is as good."""
        try:
            with self._connection() as connection:
                connection.execute(insert(schedules_table).values(name=name, last_slot=slot))
        except IntegrityError:
            pass

    def enqueue_slot(self, name: str, slot: datetime, job: NewJob | None, now: datetime) -> int | None:
        """Move schedule `name` on to `slot` and enqueue its `job` (None: skip the slot), in one transaction, if no
        one did yet: the update matches in one worker only (the row lock, then a re-check of `last_slot`, makes the
        others wait and then miss). Returns the job's id; None when the slot was taken or skipped."""
        move_on = (update(schedules_table)
                   .where(schedules_table.c.name == name, schedules_table.c.last_slot < slot)
                   .values(last_slot=slot))
        with self._connection() as connection:
            if connection.execute(move_on).rowcount != 1 or job is None:  # type: ignore[attr-defined]
                return None
            with self.database.joined_cursor(connection) as cursor:
                return self.database.dialect.insert_jobs(cursor, [job], now)[0]

    # -- workers ---------------------------------------------------------------------------------------

    def register_worker(self, worker: WorkerRow) -> None:
        with self._transaction() as session:
            session.merge(worker)

    def beat_worker(self, worker_id: str, now: datetime) -> None:
        with self._connection() as connection:
            connection.execute(update(workers_table).where(workers_table.c.id == worker_id).values(heartbeat_at=now))

    def unregister_worker(self, worker_id: str) -> None:
        with self._connection() as connection:
            connection.execute(delete(workers_table).where(workers_table.c.id == worker_id))

    def prune_workers(self, dead_before: datetime) -> int:
        """Forget workers whose last heartbeat is older than `dead_before` (they died without unregistering)."""
        with self._connection() as connection:
            result = connection.execute(delete(workers_table).where(workers_table.c.heartbeat_at < dead_before))
            return result.rowcount  # type: ignore[attr-defined, no-any-return]

    def live_workers(self, alive_since: datetime) -> list[tuple[WorkerRow, int]]:
        """Workers heard from since `alive_since`, oldest first, each with how many jobs it runs now."""
        running = (select(Job.worker_id, func.count()).where(Job.status == JobStatus.RUNNING)
                   .group_by(Job.worker_id))
        with self._read() as session:
            counts: dict[str | None, int] = dict(session.exec(running).all())  # type: ignore[arg-type]
            workers = session.exec(select(WorkerRow).where(WorkerRow.heartbeat_at >= alive_since)
                                   .order_by(col(WorkerRow.started_at))).all()
        return [(worker, counts.get(worker.id, 0)) for worker in workers]

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self._read() as session:
            job = session.get(Job, _checked_id(job_id))
        if job is None:
            raise _not_found(job_id)
        return job

    def list_jobs(
        self, statuses: Sequence[JobStatus] = (), queue: str | None = None, limit: int = 50,
        types: Sequence[str] = (), *, before_id: int | None = None, due_after: datetime | None = None,
    ) -> list[Job]:
        """The newest jobs first, filtered by any of status, queue and type; `before_id` pages on (the jobs older
        than that one). With `due_after`: only jobs due later than it, the soonest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit < 2**63:
            raise JobRequestError(f"the number of jobs to list must be a positive integer, got {limit!r:.80}")
        if due_after is None:
            query = select(Job).order_by(col(Job.id).desc()).limit(limit)
        else:
            query = select(Job).where(Job.run_at > due_after).order_by(col(Job.run_at), col(Job.id)).limit(limit)
        if before_id is not None:
            query = query.where(col(Job.id) < before_id)
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

    def throughput(self, since: datetime) -> list[tuple[str, JobStatus, int]]:
        """(minute 'YYYY-MM-DDTHH:MM' UTC, status, jobs) of the jobs that finished since `since`, per minute."""
        c = jobs_table.c
        minute = self.database.dialect.minute(c.finished_at).label("minute")
        query = (select(minute, c.status, func.count()).where(c.finished_at >= since)
                 .group_by(minute, c.status).order_by(minute))
        with self._read() as session:
            return [(at, JobStatus(status), n) for at, status, n in session.execute(query)]

    def queue_depths(self, now: datetime) -> list[QueueDepth]:
        """Per queue with live jobs: pending ones due and later, running ones, the oldest due job's run_at. Reads
        only pending and running rows (through the partial indexes), never the finished history."""
        c = jobs_table.c
        due = (c.status == JobStatus.PENDING) & (c.run_at <= now)
        query = (core_select(c.queue, func.count().filter(due), func.count().filter(c.status == JobStatus.PENDING),
                           func.count().filter(c.status == JobStatus.RUNNING), func.min(c.run_at).filter(due))
                 .where(c.status.in_((JobStatus.PENDING, JobStatus.RUNNING))).group_by(c.queue).order_by(c.queue))
        with self._read() as session:
            return [QueueDepth(queue, n_due, pending - n_due, running, oldest)
                    for queue, n_due, pending, running, oldest in session.execute(query)]

    def start_workflow(self, connection: Connection | None, workflow: str, run_input: str, steps: Sequence[Any],
                       now: datetime) -> tuple[int, Advanced]:
        """Write a workflow run and its steps in one transaction: `connection`'s (the application's), or one of
        its own. Returns the run's id, and the batches its first steps fanned out to."""
        with self._joining(connection) as joined:
            run_id, fanned = workflow_steps.insert_run(joined, workflow, run_input, steps, now)
            advanced = followups.after_jobs_ended(joined, [], [], now, self.step_payload,
                                                  batches=[batch_id for batch_id, _ in fanned])
            self.database.dialect.announce(joined, Channel.NEW_JOBS)
        return run_id, replace(advanced, batches_started=[*fanned, *advanced.batches_started])

    def cancel_workflow(self, run_id: int, now: datetime) -> tuple[int, int, Advanced]:
        """Cancel a running workflow run; (steps and their batches' jobs cancelled, running ones asked to stop,
        the batches that settled with it)."""
        with self._connection() as connection:
            done = workflow_steps.cancel_run(connection, _checked_id(run_id), now)
            if done is None:
                status = connection.execute(select(WorkflowRun.status).where(WorkflowRun.id == run_id)).scalar()
                if status is None:
                    raise JobNotFoundError(f"no workflow run {run_id}")
                raise InvalidJobStateError(f"workflow run {run_id} is {status}; only a running run can be cancelled")
            fanned = connection.execute(batch_members.batches_of_run(run_id)).scalars().all()
            advanced = followups.after_jobs_ended(connection, [], [], now, self.step_payload, batches=fanned)
            self.database.dialect.announce(connection, Channel.FINISHED_JOBS)
        return (*done, advanced)

    # -- batches ---------------------------------------------------------------------------------------

    def start_batch(self, connection: Connection | None, members: Sequence[NewJob], callbacks: Sequence[dict[str, Any]],
                    now: datetime) -> tuple[int, Advanced]:
        """Write a batch and its jobs in one transaction: `connection`'s (the application's), or one of its own.
        A batch without jobs settles at once (its callbacks are due). Returns its id and what settled."""
        with self._joining(connection) as joined:
            batch_id = batch_members.insert_batch(joined, members, callbacks, now)
            advanced = followups.after_jobs_ended(joined, [], [], now, self.step_payload, batches=[batch_id])
            self.database.dialect.announce(joined, Channel.NEW_JOBS)
        return batch_id, replace(advanced, batches_started=[(batch_id, len(members))])

    def batches(self, status: BatchStatus | None, limit: int) -> list[tuple[BatchRow, dict[str, int]]]:
        """The newest batches (of `status`, if given), each with its jobs counted by status."""
        query = select(BatchRow).order_by(col(BatchRow.id).desc()).limit(limit)
        if status is not None:
            query = query.where(BatchRow.status == status)
        with self._read() as session:
            found = list(session.exec(query))
            counts: dict[int, dict[str, int]] = {batch.id: {} for batch in found if batch.id is not None}
            c = jobs_table.c
            for batch_id, job_status, n in session.execute(
                    core_select(c.batch_id, c.status, func.count()).where(c.batch_id.in_(list(counts)))
                    .group_by(c.batch_id, c.status)):
                counts[batch_id][job_status] = n
        return [(batch, counts[batch.id or 0]) for batch in found]

    def batch(self, batch_id: int) -> tuple[BatchRow, list[Job]]:
        """A batch and its jobs, in the order they were given."""
        with self._read() as session:
            row = session.get(BatchRow, _checked_id(batch_id))
            if row is None:
                raise JobNotFoundError(f"no batch {batch_id}")
            return row, list(session.exec(select(Job).where(Job.batch_id == batch_id).order_by(col(Job.id))))

    def workflow_runs(self, status: RunStatus | None, limit: int) -> list[tuple[WorkflowRun, list[Job]]]:
        """The newest runs (of `status`, if given), each with its steps."""
        query = select(WorkflowRun).order_by(col(WorkflowRun.id).desc()).limit(limit)
        if status is not None:
            query = query.where(WorkflowRun.status == status)
        with self._read() as session:
            runs = list(session.exec(query))
            steps = list(session.exec(select(Job).where(col(Job.workflow_run_id).in_([run.id for run in runs]))
                                      .order_by(col(Job.id))))
        return [(run, [step for step in steps if step.workflow_run_id == run.id]) for run in runs]

    def workflow_run(self, run_id: int) -> tuple[WorkflowRun, list[Job], dict[str, list[str]]]:
        """A run, its steps in planned order (dependencies first), and which steps each waits for."""
        with self._read() as session:
            run = session.get(WorkflowRun, _checked_id(run_id))
            if run is None:
                raise JobNotFoundError(f"no workflow run {run_id}")
            steps = list(session.exec(select(Job).where(Job.workflow_run_id == run_id).order_by(col(Job.id))))
            names = {step.id: step.workflow_step for step in steps}
            pairs = session.exec(select(WorkflowEdge).where(col(WorkflowEdge.to_job_id).in_(list(names)))).all()
        depends_on: dict[str, list[str]] = {}
        for edge in pairs:
            depends_on.setdefault(names[edge.to_job_id] or "", []).append(names[edge.from_job_id] or "")
        return run, steps, depends_on

    # -- helpers ---------------------------------------------------------------------------------------

    def _joining(self, connection: Connection | None) -> AbstractContextManager[Connection]:
        """`connection` (an application's transaction) if given, else a transaction of the store's own."""
        self.ensure_schema()
        return nullcontext(connection) if connection is not None else self.database.connection()

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
        return (jobs_table.c.worker_id == worker_id, RUNNING)

    @staticmethod
    def _get_for_update(session: Session, job_id: int) -> Job:
        job = session.get(Job, _checked_id(job_id), with_for_update=True)
        if job is None:
            raise _not_found(job_id)
        return job


_OWNED = (jobs_table.c.worker_id == bindparam("w_id"), RUNNING)
# Rows of this worker among `ids`, locked in id order. Every statement that may wait for a row lock held by another
# transaction of the worker (the heartbeat's renewal, the outcomes of a batch) takes its locks this way: two
# transactions that lock rows in the same order cannot deadlock (PostgreSQL notices a deadlock only after
# deadlock_timeout, a second, long enough for short leases to expire). SQLite: the write lock; FOR UPDATE is left out.
_LOCKED_IN_ORDER = (select(jobs_table.c.id).where(IdIn(jobs_table.c.id, "ids"), *_OWNED)
                    .order_by(jobs_table.c.id).with_for_update())
_RENEW = (
    update(jobs_table)
    .where(jobs_table.c.id.in_(_LOCKED_IN_ORDER.scalar_subquery()), *_OWNED)
    .values(lease_expires_at=bindparam("lease_until"))
    .returning(jobs_table.c.id, jobs_table.c.cancel_requested, jobs_table.c.queue.in_(PAUSED_QUEUES))
)


_STOPS_A_RUN = (Kind.FAIL, Kind.CANCEL)
_NOTHING_MOVED = Advanced()
_HAS_FOLLOWERS = (jobs_table.c.workflow_run_id.is_not(None) | jobs_table.c.batch_id.is_not(None)).label("followed")
# A step that fanned out to a batch never runs as a job itself: a bulk retry leaves it to its batch's jobs.
_NOT_FANNED_OUT = ~jobs_table.c.id.in_(core_select(_batches.c.step_job_id).where(_batches.c.step_job_id.is_not(None)))


def _no_workflows(workflow: str, step: str, run_input: dict[str, Any], results: dict[str, Any]) -> str:
    raise JobQueueError(f"workflow {workflow} is not registered with this queue; its step {step!r} cannot get its "
                        "payload")


def _finish(where: ColumnElement[bool], **values: Any) -> Update:
    """An outcome's statement: every outcome ends the run (no lease, no pending cancel request)."""
    return (update(jobs_table).where(where, *_OWNED)
            .values(updated_at=bindparam("now"), lease_expires_at=None, cancel_requested=False, **values))


_MANY = jobs_table.c.id.in_(_LOCKED_IN_ORDER.scalar_subquery())
_ONE = jobs_table.c.id == bindparam("job_id")
# The outcomes whose values are the same for every row: one statement for a whole batch.
_FINISH_MANY: dict[Kind, Update] = {
    kind: _finish(_MANY, **values).returning(jobs_table.c.id, jobs_table.c.result_awaited)
    for kind, values in {
        Kind.COMPLETE: {"status": JobStatus.COMPLETED, "finished_at": bindparam("now")},
        Kind.CANCEL: {"status": JobStatus.CANCELLED, "finished_at": bindparam("now"),
                      "last_error": "cancelled while running"},
        Kind.RELEASE: {"status": JobStatus.PENDING, "attempts": jobs_table.c.attempts - 1},
    }.items()
}
# The outcomes that carry their own error text: one statement per row. (No parameter is named like a column:
# SQLAlchemy would add it to the SET clause.)
_FINISH_ONE: dict[Kind, Update] = {
    kind: _finish(_ONE, last_error=bindparam("error"), last_traceback=bindparam("traceback"), **values)
    .returning(jobs_table.c.id, jobs_table.c.result_awaited)
    for kind, values in {
        Kind.RETRY: {"status": JobStatus.PENDING, "run_at": bindparam("retry_at")},
        Kind.FAIL: {"status": JobStatus.FAILED, "finished_at": bindparam("now")},
    }.items()
}


_SET_RESULT = update(jobs_table).where(_ONE, *_OWNED).values(result=bindparam("value", type_=jobs_table.c.result.type))
_ENDS = frozenset({Kind.COMPLETE, Kind.FAIL, Kind.CANCEL})  # what someone awaiting a result waits for


def _checked_id(job_id: object) -> int:
    """A job id as the database can look it up: an integer that is not one is bad input; one beyond the range
    of ids cannot exist."""
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        raise JobRequestError(f"a job id must be an integer, got {job_id!r:.80}")
    if not 0 < job_id < 2**63:
        raise _not_found(job_id)
    return job_id


def _not_found(job_id: int) -> JobNotFoundError:
    return JobNotFoundError(f"no job with id {job_id} (finished jobs are deleted after the retention period)")
