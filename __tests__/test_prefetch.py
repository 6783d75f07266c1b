"""Claiming ahead: as many jobs as the slots finish while a claim is under way, none for jobs slower than a
claim; and jobs claimed ahead that no slot took go back untouched at a stop, or end without running when they
were cancelled while they waited."""

from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from __tests__.support.jobs import SleepJob
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue
from main.services.runner import RunningJob, StopReason
from main.services.worker.prefetch import Prefetch
from main.services.worker.worker import Worker

pytestmark = pytest.mark.anyio


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def after_one_claim(capacity: int, claim_seconds: float, run_seconds: float) -> tuple[Prefetch, Ticks]:
    """A worker that claimed once (the claim took `claim_seconds`), `run_seconds` after that claim returned."""
    ticks = Ticks()
    prefetch = Prefetch(capacity, clock=ticks)
    assert prefetch.batch(held=0, ended=0) == capacity  # nothing known yet: the free slots only
    prefetch.claiming(ended=0)
    ticks.now += claim_seconds
    prefetch.claimed()
    ticks.now += run_seconds
    return prefetch, ticks


def test_fast_jobs_are_claimed_ahead_by_what_the_slots_finish_during_a_claim() -> None:
    prefetch, _ = after_one_claim(capacity=100, claim_seconds=0.002, run_seconds=0.002)
    prefetch.batch(held=0, ended=100)  # 100 ended 4 ms after the claim began: 25,000 a second
    assert prefetch.extra == 50  # what the slots get through in one claim's 2 ms


def test_jobs_slower_than_a_claim_are_not_claimed_ahead() -> None:
    prefetch, _ = after_one_claim(capacity=100, claim_seconds=0.002, run_seconds=1.0)
    prefetch.batch(held=0, ended=100)  # 100 slots of one-second jobs
    assert prefetch.extra == 0


def test_no_more_is_claimed_ahead_than_there_are_slots() -> None:
    prefetch, _ = after_one_claim(capacity=10, claim_seconds=0.01, run_seconds=0.0)
    prefetch.batch(held=0, ended=10_000)
    assert prefetch.extra == 10


def test_a_claim_not_made_for_want_of_room_measures_nothing() -> None:
    prefetch, ticks = after_one_claim(capacity=100, claim_seconds=0.002, run_seconds=0.0)
    ticks.now += 0.001
    assert prefetch.batch(held=1_000, ended=25) <= 0  # woken while full: no claim
    ticks.now += 0.001
    prefetch.batch(held=0, ended=100)
    assert prefetch.extra == 50  # 100 over the 4 ms since the last claim began, not 75 over the last 1 ms


def test_a_worker_holds_its_slots_and_two_claims_worth_and_claims_one_batch_at_a_time() -> None:
    assert Prefetch(capacity=100).batch(held=40, ended=0) == 60  # nothing known: the free slots only
    prefetch, _ = after_one_claim(capacity=100, claim_seconds=0.002, run_seconds=0.002)
    assert prefetch.batch(held=0, ended=100) == 150  # extra 50: from an empty worker, the slots and one claim's worth
    assert prefetch.batch(held=150, ended=100) == 50  # at once again, for the jobs that end while it is under way
    assert prefetch.room(held=200) == 0


async def _claim_into_one_slot(queue: JobQueue, worker: Worker, count: int) -> list[RunningJob]:
    """Claim `count` jobs for a worker whose executor has a single slot: all but the first wait for it."""
    now = queue.now()
    claimed = await queue.database.run(queue.store.claim, queue.worker_id, [], count, now, now + timedelta(seconds=30))
    assert len(claimed) == count
    handed = [RunningJob(job) for job in sorted(claimed, key=lambda job: job.id)]
    for running in handed:
        queue.executions.add(running)
        worker.executor.start(running)
    return handed


async def test_jobs_claimed_ahead_go_back_untouched_when_the_worker_stops(queue: JobQueue, tmp_path: Path) -> None:
    record = tmp_path / "ran.txt"
    ids = [await SleepJob.perform_later({"seconds": 0.3, "path": str(record)}) for _ in range(3)]
    worker = Worker(queue)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.executor.run_slots, 1)
        await _claim_into_one_slot(queue, worker, 3)
        await anyio.sleep(0.1)  # the first runs; the others wait for its slot
        worker.executor.close()
    await worker.completer.flush()
    first, *waiting = (queue.store.get(job_id) for job_id in ids)
    assert first.status == JobStatus.COMPLETED
    assert [(job.status, job.attempts, job.lease_expires_at) for job in waiting] == [(JobStatus.PENDING, 0, None)] * 2
    assert record.read_text().split("\n").count(f"started {ids[0]} 1") == 1
    assert all(f"started {job_id}" not in record.read_text() for job_id in ids[1:])
    assert len(queue.executions) == 0


async def test_a_job_cancelled_while_it_waits_for_a_slot_never_starts(queue: JobQueue, tmp_path: Path) -> None:
    record = tmp_path / "ran.txt"
    first, second = [await SleepJob.perform_later({"seconds": 0.2, "path": str(record)}) for _ in range(2)]
    worker = Worker(queue)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.executor.run_slots, 1)
        await _claim_into_one_slot(queue, worker, 2)
        queue.executions.stop(second, StopReason.CANCELLED)  # what the heartbeat does on a cancel request
        with anyio.fail_after(5):
            while queue.executions:
                await anyio.sleep(0.01)
        worker.executor.close()
    await worker.completer.flush()
    assert (queue.store.get(first).status, queue.store.get(second).status) == (JobStatus.COMPLETED,
                                                                               JobStatus.CANCELLED)
    assert f"started {second}" not in record.read_text()
