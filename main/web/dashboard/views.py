"""What the dashboard reads and does, the same for the JSON API and the pages: each call one short transaction
of the queue's, in a thread (the queue's calls block)."""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

import anyio.to_thread

from main.db.entities import BatchStatus, JobStatus, RunStatus
from main.db.store import JobFilter
from main.errors import JobRequestError
from main.services.documents import (
    batch_document,
    batch_summary,
    job_document,
    job_summary,
    queue_document,
    run_document,
    worker_document,
)
from main.services.job_queue import JobQueue

S = TypeVar("S", bound=StrEnum)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
THROUGHPUT_MINUTES = 60


@dataclass(frozen=True)
class JobQuery:
    """A filtered page of jobs, newest first (scheduled ones: soonest first)."""

    status: JobStatus | None = None
    queue: str | None = None
    type: str | None = None
    scheduled: bool = False  # pending jobs due later
    before: int | None = None  # the page after the one that ended with this id
    limit: int = PAGE_SIZE

    @classmethod
    def parse(cls, params: Any) -> "JobQuery":
        """From query parameters; a bad one is a JobRequestError naming it and what it takes."""
        status = params.get("status") or None
        if status is not None and status not in JobStatus.__members__.values():
            raise JobRequestError(f"status must be one of {', '.join(s.value for s in JobStatus)}; got {status!r:.40}")
        return cls(JobStatus(status) if status else None, params.get("queue") or None, params.get("type") or None,
                   params.get("scheduled") in ("1", "true"), _integer(params, "before", 1, 2**63 - 1),
                   _integer(params, "limit", 1, MAX_PAGE_SIZE) or PAGE_SIZE)

    def filter(self) -> JobFilter:
        return JobFilter(statuses=(self.status,) if self.status else (), types=(self.type,) if self.type else (),
                         queues=(self.queue,) if self.queue else ())


def _integer(params: Any, name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise JobRequestError(f"{name} must be a whole number from {low} to {high}; got {value!r:.40}")
    return int(value)


def _status(params: Any, kind: type[S]) -> S | None:
    """The `status` parameter as one of `kind`'s members (None if not given)."""
    value = params.get("status") or None
    if value is None:
        return None
    if value not in kind.__members__.values():
        raise JobRequestError(f"status must be one of {', '.join(kind)}; got {value!r:.40}")
    return kind(value)


class Views:
    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    # -- reading ---------------------------------------------------------------------------------------

    async def overview(self) -> dict[str, Any]:
        return await self._run(self._overview)

    def _overview(self) -> dict[str, Any]:
        queue = self.queue
        counts = {status.value: 0 for status in JobStatus}
        for status, _, n in queue.store.counts():
            counts[status.value] += n
        now = queue.now()
        throughput = queue.store.throughput(now - timedelta(minutes=THROUGHPUT_MINUTES))
        return {"now": now, "counts": counts, "queues": [queue_document(q) for q in queue.list_queues_sync()],
                "workers": len(queue.get_workers_sync()),
                "throughput": [{"minute": minute, "status": status.value, "count": n}
                               for minute, status, n in throughput]}

    async def queues(self) -> list[dict[str, Any]]:
        return [queue_document(q) for q in await self._run(self.queue.list_queues_sync)]

    async def jobs(self, query: JobQuery) -> dict[str, Any]:
        jobs = await self._run(lambda: self.queue.store.list_jobs(
            (query.status,) if query.status else (JobStatus.PENDING,) if query.scheduled else (), query.queue,
            query.limit, (query.type,) if query.type else (), before_id=query.before,
            due_after=self.queue.now() if query.scheduled else None))
        more = len(jobs) == query.limit and not query.scheduled
        return {"jobs": [job_summary(job) for job in jobs], "next_before": jobs[-1].id if more else None}

    async def job(self, job_id: int) -> dict[str, Any]:
        return job_document(await self._run(self.queue.store.get, job_id))

    async def workflows(self, params: Any) -> list[dict[str, Any]]:
        limit = _integer(params, "limit", 1, MAX_PAGE_SIZE) or PAGE_SIZE
        found = await self._run(self.queue.store.workflow_runs, _status(params, RunStatus), limit)
        return [run_document(run, steps, {}) for run, steps in found]

    async def workflow(self, run_id: int) -> dict[str, Any]:
        return run_document(*await self._run(self.queue.store.workflow_run, run_id))

    async def batches(self, params: Any) -> list[dict[str, Any]]:
        limit = _integer(params, "limit", 1, MAX_PAGE_SIZE) or PAGE_SIZE
        found = await self._run(self.queue.store.batches, _status(params, BatchStatus), limit)
        return [batch_summary(batch, counts) for batch, counts in found]

    async def batch(self, batch_id: int) -> dict[str, Any]:
        return batch_document(*await self._run(self.queue.store.batch, batch_id))

    async def workers(self) -> list[dict[str, Any]]:
        return [worker_document(w, running) for w, running in await self._run(self.queue.get_workers_sync)]

    # -- acting ----------------------------------------------------------------------------------------

    async def retry(self, job_id: int) -> dict[str, Any]:
        await self._run(self.queue.retry_job_sync, job_id)
        return {"id": job_id, "status": JobStatus.PENDING.value}

    async def cancel(self, job_id: int) -> dict[str, Any]:
        status = await self._run(self.queue.cancel_job_sync, job_id)
        return {"id": job_id, "status": status.value, "cancel_requested": status == JobStatus.RUNNING}

    async def retry_matching(self, query: JobQuery) -> dict[str, Any]:
        which = query.filter()
        which.only(JobStatus.FAILED, JobStatus.CANCELLED, verb="retry")
        return {"retried": await self._run(self.queue.retry_jobs_sync, which)}

    async def cancel_matching(self, query: JobQuery) -> dict[str, Any]:
        which = query.filter()
        which.only(JobStatus.PENDING, JobStatus.RUNNING, verb="cancel")
        cancelled, asked = await self._run(self.queue.cancel_jobs_sync, which)
        return {"cancelled": cancelled, "asked_to_stop": asked}

    async def pause(self, name: str) -> dict[str, Any]:
        await self._run(self.queue.pause_queue_sync, name)
        return {"queue": name, "paused": True}

    async def resume(self, name: str) -> dict[str, Any]:
        was_paused = await self._run(self.queue.resume_queue_sync, name)
        return {"queue": name, "paused": False, "was_paused": was_paused}
