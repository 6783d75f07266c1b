"""The claim: one UPDATE that moves up to `limit` due pending jobs to running for a worker, best first, and
respects every limit on the way (paused queues, concurrency and rate limits), for the whole fleet at once.

    candidates   due pending jobs of the worker's queues, not paused, whose keys look under their limits,
                 best first, LIMIT n, locked (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the write lock)
    ranked       each limited candidate's rank among the candidates of its concurrency key and of its rate key
    free         per key, how many more may run (start) now: counted exactly, under a per-key lock
    chosen       the candidates without limits, and those whose rank fits in what is free: claimed

A key at its limit is left out of `candidates`, so its waiting jobs never fill the batch and hold up other keys.
The look there uses the statement's snapshot and may be stale; `free` is the exact count (the dialect's).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    Update,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import aliased

from main.db.dialects import Dialect
from main.db.entities import Job, JobStatus, QueueRow
from main.db.rows import ClaimedJob

jobs_table = Job.__table__  # type: ignore[attr-defined]
queues_table = QueueRow.__table__  # type: ignore[attr-defined]
# The states the partial indexes are made for, written literally: a bound parameter would hide from the
# planners that a query only wants pending (or running) rows, and they would not use the index.
PENDING = jobs_table.c.status == literal_column(f"'{JobStatus.PENDING.value}'")
RUNNING = jobs_table.c.status == literal_column(f"'{JobStatus.RUNNING.value}'")
# The queues no worker claims from: a few rows at most, read inside the claim and the heartbeat.
PAUSED_QUEUES = select(queues_table.c.name).where(queues_table.c.paused_at.is_not(None))

_claims: dict[tuple[str, bool, bool], Update] = {}


def running_with(key: ColumnElement[Any]) -> ColumnElement[int]:
    """How many jobs of concurrency key `key` run now (as the statement's snapshot sees them)."""
    other = aliased(jobs_table, name="other")
    return select(func.count()).where(other.c.status == literal_column(f"'{JobStatus.RUNNING.value}'"),
                                      other.c.concurrency_key == key).scalar_subquery()


def started_with(key: ColumnElement[Any], since: ColumnElement[datetime]) -> ColumnElement[int]:
    """How many jobs of rate key `key` started after `since` (as the statement's snapshot sees them)."""
    other = aliased(jobs_table, name="other")
    return select(func.count()).where(other.c.rate_key == key, other.c.started_at > since).scalar_subquery()


def claim_statement(dialect: Dialect, some_queues: bool, one_job: bool) -> Update:
    """The claim, built once per shape. Parameters: now, limit, lease_until, w_id; queues (some_queues);
    job_id (one_job)."""
    shape = (dialect.name, some_queues, one_job)
    if shape not in _claims:
        _claims[shape] = _build(dialect, some_queues, one_job)
    return _claims[shape]


def _build(dialect: Dialect, some_queues: bool, one_job: bool) -> Update:
    jobs, now = jobs_table, bindparam("now", type_=jobs_table.c.run_at.type)
    running_now = running_with(jobs.c.concurrency_key)
    started_lately = started_with(jobs.c.rate_key, dialect.window_start(now, jobs.c.rate_window))
    due = select(jobs.c.id, jobs.c.priority, jobs.c.run_at, jobs.c.concurrency_key, jobs.c.concurrency_limit,
                 jobs.c.rate_key, jobs.c.rate_limit, jobs.c.rate_window).where(
        PENDING, jobs.c.run_at <= now,
        ~exists(PAUSED_QUEUES.where(queues_table.c.name == jobs.c.queue)),
        or_(jobs.c.concurrency_key.is_(None), running_now < jobs.c.concurrency_limit),
        or_(jobs.c.rate_key.is_(None), started_lately < jobs.c.rate_limit),
    )
    if some_queues:
        due = due.where(jobs.c.queue.in_(bindparam("queues", expanding=True)))
    if one_job:
        due = due.where(jobs.c.id == bindparam("job_id"))
    candidates = (due.order_by(jobs.c.priority.desc(), jobs.c.run_at, jobs.c.id).limit(bindparam("limit"))
                  .with_for_update(skip_locked=True)  # PostgreSQL; SQLite holds the write lock instead
                  .cte("candidates"))
    c = candidates.c
    best_first = (c.priority.desc(), c.run_at, c.id)
    unlimited = select(c.id).where(c.concurrency_key.is_(None), c.rate_key.is_(None))
    # Ranks only among the candidates that have a limit (most batches have none: nothing to sort).
    ranked = select(c.id, c.concurrency_key, c.rate_key,
                    func.row_number().over(partition_by=c.concurrency_key, order_by=best_first).label("in_key"),
                    func.row_number().over(partition_by=c.rate_key, order_by=best_first).label("in_rate"),
                    ).where(or_(c.concurrency_key.is_not(None), c.rate_key.is_not(None))).subquery("ranked")
    running_free = (select(c.concurrency_key.label("key"),
                           dialect.running_free(c.concurrency_key, func.max(c.concurrency_limit), c.id)
                           .label("free"))
                    .where(c.concurrency_key.is_not(None)).group_by(c.concurrency_key).subquery("running_free"))
    starts_free = (select(c.rate_key.label("key"),
                          dialect.starts_free(c.rate_key, func.max(c.rate_limit),
                                              dialect.window_start(now, func.max(c.rate_window)), c.id)
                          .label("free"))
                   .where(c.rate_key.is_not(None)).group_by(c.rate_key).subquery("starts_free"))
    limited = (select(ranked.c.id)
               .outerjoin(running_free, running_free.c.key == ranked.c.concurrency_key)
               .outerjoin(starts_free, starts_free.c.key == ranked.c.rate_key)
               .where(_fits(ranked.c.concurrency_key, ranked.c.in_key, running_free.c.free),
                      _fits(ranked.c.rate_key, ranked.c.in_rate, starts_free.c.free)))
    chosen = union_all(unlimited, limited)
    return (
        update(jobs)
        .where(jobs.c.id.in_(chosen))
        .values(status=JobStatus.RUNNING, attempts=jobs.c.attempts + 1, worker_id=bindparam("w_id"),
                lease_expires_at=bindparam("lease_until"), started_at=now, updated_at=now)
        .returning(*(cast(jobs.c[name], Text) if name in ("payload", "checkpoint", "trace_context") else jobs.c[name]
                     for name in ClaimedJob.COLUMNS))
    )


def due_unlimited_statement(some_queues: bool) -> Select[tuple[bool]]:
    """Whether a due pending job without limits exists in the claimable queues, read without taking a lock. When a
    claim found nothing but this is true, another transaction held the job for a moment (SKIP LOCKED), e.g. a
    heartbeat's renewal that locked it as it was released. Parameters: now; queues (some_queues)."""
    jobs = jobs_table
    due = select(jobs.c.id).where(PENDING, jobs.c.run_at <= bindparam("now", type_=jobs.c.run_at.type),
                                  jobs.c.concurrency_key.is_(None), jobs.c.rate_key.is_(None),
                                  ~exists(PAUSED_QUEUES.where(queues_table.c.name == jobs.c.queue)))
    if some_queues:
        due = due.where(jobs.c.queue.in_(bindparam("queues", expanding=True)))
    return select(exists(due))


def _fits(key: ColumnElement[str | None], rank: ColumnElement[int], free: ColumnElement[int]) -> ColumnElement[bool]:
    return or_(key.is_(None), rank <= free)
