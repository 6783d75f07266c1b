"""Concurrency and rate limits, enforced inside the claim for the whole fleet: jobs over a limit stay pending,
and do not hold up the jobs of other keys."""

import itertools
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from __tests__.conftest import QueueFactory, wait_for
from __tests__.support.jobs import (
    JOBS,
    Nothing,
    OnePerAccountJob,
    ThreePerMinuteJob,
    TwoPerAccountJob,
    TwoPerMinutePerAccountJob,
)
from main.base.jobs import BaseJob, Limit, job
from main.clock import FrozenClock
from main.db.entities import JobStatus
from main.db.outcomes import Decision, Kind
from main.demo.worker_process import WorkerProcess
from main.errors import JobDefinitionError
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


def claim(queue: JobQueue, limit: int = 10, worker: str = "w1") -> list[int]:
    now = queue.clock.now()
    return sorted(job.id for job in queue.store.claim(worker, (), limit, now, now + timedelta(seconds=60)))


def finish(queue: JobQueue, job_ids: list[int], worker: str = "w1") -> None:
    queue.store.record(worker, [Decision(job_id, Kind.COMPLETE) for job_id in job_ids], queue.clock.now())


def test_a_key_at_its_limit_waits_and_other_keys_go_on(make_queue: QueueFactory) -> None:
    queue = make_queue()
    a1, a2, a3 = OnePerAccountJob.perform_bulk_sync([{"account": "a"}] * 3)
    [b1] = OnePerAccountJob.perform_bulk_sync([{"account": "b"}])
    assert claim(queue) == [a1, b1]  # one per account, in one claim
    assert claim(queue) == []  # both at their limit
    finish(queue, [a1])
    assert claim(queue) == [a2]
    assert queue.store.get(a3).status == JobStatus.PENDING


def test_waiting_jobs_of_a_full_key_do_not_fill_the_batch(make_queue: QueueFactory) -> None:
    """Batches of one: without the look at the limits before LIMIT, `a`'s waiting jobs would come first forever."""
    queue = make_queue()
    a1, a2, *_ = TwoPerAccountJob.perform_bulk_sync([{"account": "a"}] * 5)
    [b1] = TwoPerAccountJob.perform_bulk_sync([{"account": "b"}])
    assert [claim(queue, limit=1) for _ in range(4)] == [[a1], [a2], [b1], []]


def test_a_rate_limit_counts_starts_per_window(make_queue: QueueFactory) -> None:
    clock = FrozenClock()
    queue = make_queue(clock=clock)
    ids = ThreePerMinuteJob.perform_bulk_sync([{"account": str(n)} for n in range(8)])
    first = claim(queue)
    assert first == ids[:3]
    finish(queue, first)  # finished jobs still count: it is starts that are limited
    clock.advance(59)
    assert claim(queue) == []
    clock.advance(2)
    assert claim(queue) == ids[3:6]


def test_a_rate_limit_per_key_leaves_other_keys_alone(make_queue: QueueFactory) -> None:
    queue = make_queue(clock=FrozenClock())
    ids = TwoPerMinutePerAccountJob.perform_bulk_sync([{"account": key} for key in "aaab"])
    assert claim(queue) == [ids[0], ids[1], ids[3]]


def test_eight_workers_claiming_at_once_never_run_two_of_a_key(make_queue: QueueFactory) -> None:
    """Concurrent claims, each of many jobs: the exact count under the key's lock decides, not a snapshot."""
    queue = make_queue()
    OnePerAccountJob.perform_bulk_sync([{"account": f"k{n % 6}"} for n in range(48)])
    for _ in range(60):
        with ThreadPoolExecutor(8) as pool:
            claimed = list(pool.map(lambda n: claim(queue, limit=4, worker=f"w{n}"), range(8)))
        running = queue.store.list_jobs([JobStatus.RUNNING], limit=1000)
        keys = sorted(job.payload["account"] for job in running)
        assert len(keys) == len(set(keys)), keys
        for worker, ids in enumerate(claimed):
            finish(queue, ids, worker=f"w{worker}")
        if not queue.store.list_jobs([JobStatus.PENDING]):
            break
    assert queue.get_status_sync().counts_by_status["completed"] == 48


def test_bad_limits_fail_at_definition() -> None:
    for option, problem in ((dict(concurrency=Limit(max=0)), "option 'concurrency': Limit\\(max=...\\) must be an "
                             "integer from 1"),
                            (dict(rate_limit="100 per minute"), "option 'rate_limit': '100 per minute' is not a rate"),
                            (dict(rate_limit="5/fortnight"), "its window 'fortnight' is not a duration")):
        with pytest.raises(JobDefinitionError, match=problem):

            @job(name="BadLimitJob", **option)  # type: ignore[arg-type]
            class BadLimitJob(BaseJob[Nothing]):
                async def perform(self, payload: Nothing) -> None:
                    pass


def intervals(path: Path) -> dict[str, list[tuple[float, float]]]:
    found: dict[str, list[tuple[float, float]]] = {}
    for line in path.read_text().splitlines():
        key, start, end, _ = line.split()
        found.setdefault(key, []).append((float(start), float(end)))
    return found


@pytest.mark.slow
def test_four_worker_processes_never_run_two_jobs_of_a_key_at_once(make_queue: QueueFactory, database_url: str,
                                                                   tmp_path: Path,
                                                                   start_worker: Callable[..., WorkerProcess]) -> None:
    queue = make_queue(jobs=JOBS)
    record = tmp_path / "intervals"
    ids = OnePerAccountJob.perform_bulk_sync([{"account": f"k{n % 3}", "seconds": 0.05, "path": str(record)}
                                              for n in range(24)])
    workers = [start_worker(database_url, "--concurrency", "4", JOBQUEUE_LOG_LEVEL="warning") for _ in range(4)]
    try:
        wait_for(lambda: all(queue.store.get(job_id).status == JobStatus.COMPLETED for job_id in ids), timeout=60)
    finally:
        for worker in workers:
            worker.stop(signal.SIGTERM)
    found = intervals(record)
    assert sorted(found) == ["k0", "k1", "k2"] and sum(map(len, found.values())) == 24
    for runs in found.values():
        ordered = sorted(runs)
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(ordered)), ordered


def test_long_keys_that_differ_only_at_the_end_are_different_keys() -> None:
    """Before: a limit key was cut to the column's 300 characters, so two accounts with long keys alike in their
    first 300 shared one limit."""
    limit = Limit(max=1, key=lambda account: account)
    first, second = (limit.key_for("OnePerAccountJob", "a" * 400 + end) for end in "xy")
    assert first != second and len(first) <= 300 and len(second) <= 300
