"""Resumable jobs for the continuation tests. Each processed item writes a ProcessingLog row through
`atomically`, so the unique constraint turns any duplicate into a failure."""

from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio
from pydantic import BaseModel

from main.base.jobs import job
from main.base.jobs.continuation import CheckpointPolicy, ContinuableJob, IterationJob, Step
from main.base.jobs.continuation.enumerators import Enumerator
from main.db.entities import ProcessingLog


class Items(BaseModel):
    count: int = 10
    fail_at: int | None = None  # raise while processing this item, on the first attempt only
    item_delay: float = 0.0


def log_item(job_type: str, key: Any, job_id: int | None) -> Any:
    def write(session: Any) -> None:
        session.add(ProcessingLog(job_type=job_type, kind="item", item_key=str(key), job_id=job_id,
                                  processed_at=datetime.now(UTC)))

    return write


class ItemsJob(IterationJob[Items]):
    """Items 1..count; each logged through `atomically`. Subclasses below vary only the class options."""

    checkpoint_policy = CheckpointPolicy.every_item()  # the tests count on a checkpoint per item
    def build_enumerator(self, payload: Items, cursor: int | None) -> Enumerator:
        return self.enumerate.items(range(1, payload.count + 1), cursor=cursor)

    async def each_iteration(self, item: int, payload: Items) -> None:
        if item == payload.fail_at and self.context.attempt == 1:
            raise RuntimeError(f"item {item} failed")
        await anyio.sleep(payload.item_delay)
        self.atomically(log_item(self.options.name, item, self.context.job_id))


@job(name="CountingIterationJob", max_retries=2, backoff="fixed", base_delay=5)
class CountingIterationJob(ItemsJob):
    pass


@job(name="ResumingOnErrorJob", max_retries=0)
class ResumingOnErrorJob(ItemsJob):
    resume_errors_after_advancing = True


@job(name="ShortRunsJob")
class ShortRunsJob(ItemsJob):
    max_run_time = 0.05


@job(name="TooManyRunsJob")
class TooManyRunsJob(ItemsJob):
    max_run_time = 0.05
    max_resumptions = 2


@job(name="BatchedCheckpointsJob")
class BatchedCheckpointsJob(ItemsJob):
    checkpoint_policy = CheckpointPolicy.every(3)


class FollowUps(BaseModel):
    count: int = 3
    fail_checkpoint_at: int | None = None  # the checkpoint covering this item fails (a write raises)


@job(name="FollowUpJob", max_retries=0)
class FollowUpJob(IterationJob[FollowUps]):
    """Each item enqueues a follow-up job from inside its checkpoint write: the job exists iff the checkpoint
    commits."""

    checkpoint_policy = CheckpointPolicy.every_item()

    def build_enumerator(self, payload: FollowUps, cursor: int | None) -> Enumerator:
        return self.enumerate.items(range(1, payload.count + 1), cursor=cursor)

    async def each_iteration(self, item: int, payload: FollowUps) -> None:
        def enqueue_follow_up(session: Any) -> None:
            from __tests__.support.jobs import NoopJob

            NoopJob.perform_later_sync({"n": item})
            if item == payload.fail_checkpoint_at:
                raise RuntimeError(f"checkpoint of item {item} fails after its enqueue")

        self.atomically(enqueue_follow_up)


class Calls(BaseModel):
    per_step: int = 3


@job(name="StepsJob")
class StepsJob(ContinuableJob[Calls]):
    """Three steps; records every hook and step body call in `calls` (reset by the tests)."""

    checkpoint_policy = CheckpointPolicy.every_item()

    calls: ClassVar[list[str]] = []

    async def perform(self, payload: Calls) -> None:
        self.calls.append("perform")  # outside steps: runs on every run
        await self.step(self.prepare)
        await self.step(self.process)
        await self.step(self.slow_tail, isolated=True)

    async def prepare(self, step: Step) -> None:
        self.calls.append("prepare")
        await step.advance("prepared")

    async def process(self, step: Step) -> None:
        for item in range((step.cursor or 0) + 1, self.payload.per_step + 1):
            self.calls.append(f"process:{item}")
            self.atomically(log_item("StepsJob", f"process:{item}", self.context.job_id))
            await step.advance(item)

    async def slow_tail(self, step: Step) -> None:
        self.calls.append("slow_tail")
        await step.advance()

    async def on_start(self) -> None:
        self.calls.append("on_start")

    async def on_resume(self) -> None:
        self.calls.append("on_resume")

    async def on_shutdown(self, reason: str) -> None:
        self.calls.append("on_shutdown")

    async def on_complete(self) -> None:
        self.calls.append("on_complete")

    async def on_step_start(self, step: Step) -> None:
        self.calls.append(f"start:{step.name}")

    async def on_step_complete(self, step: Step) -> None:
        self.calls.append(f"done:{step.name}")


JOBS = [FollowUpJob, CountingIterationJob, ResumingOnErrorJob, ShortRunsJob, TooManyRunsJob, BatchedCheckpointsJob,
        StepsJob]
