"""Unique jobs: a second enqueue of a key that a job holds writes nothing and returns that job's id (or raises),
enforced by a partial unique index, under concurrent enqueues from threads and processes."""

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from __tests__.conftest import ROOT, QueueFactory
from __tests__.support.jobs import (
    HourlyReportJob,
    NoopJob,
    Nothing,
    StrictAccountJob,
    SyncAccountJob,
)
from main.base.jobs import BaseJob, JobRequest, Unique, job
from main.clock import FrozenClock
from main.db.entities import Job, JobStatus
from main.db.store import JobFilter
from main.errors import (
    DuplicateJobError,
    InvalidJobStateError,
    JobDefinitionError,
    JobRequestError,
)
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


def rows(queue: JobQueue, job_type: str) -> int:
    with queue.database.read() as session:
        return session.exec(select(func.count()).select_from(Job).where(Job.type == job_type)).one()


async def test_a_duplicate_returns_the_pending_jobs_id_and_writes_nothing(make_queue: QueueFactory) -> None:
    queue = make_queue()
    first = await SyncAccountJob.perform_later({"account": "acme"})
    assert await SyncAccountJob.perform_later({"account": "acme", "seconds": 1}) == first
    other = await SyncAccountJob.perform_later({"account": "globex"})
    assert other != first and rows(queue, "SyncAccountJob") == 2
    assert (await queue.get_job(first)).payload == {"account": "acme", "path": None, "seconds": 0.0}


async def test_the_key_is_free_again_once_its_job_has_ended(make_queue: QueueFactory) -> None:
    queue = make_queue()
    first = await SyncAccountJob.perform_later({"account": "acme"})
    await queue.work_one(first)  # running, then completed: held while running, freed at the end
    second = await SyncAccountJob.perform_later({"account": "acme"})
    assert second != first
    await queue.cancel_job(second)
    assert await SyncAccountJob.perform_later({"account": "acme"}) not in (first, second)


async def test_on_duplicate_raise_writes_nothing_not_even_the_other_jobs_of_the_batch(make_queue: QueueFactory) -> None:
    queue = make_queue()
    held = await StrictAccountJob.perform_later({"account": "acme"})
    requests = [JobRequest(NoopJob, {"n": 1}), JobRequest(StrictAccountJob, {"account": "acme"})]
    with pytest.raises(DuplicateJobError, match=f"unique key 'acme' exists already \\(job {held}\\)") as raised:
        await queue.enqueue_many(requests)
    assert raised.value.existing_id == held
    assert (rows(queue, "NoopJob"), rows(queue, "StrictAccountJob")) == (0, 1)


async def test_duplicates_within_one_bulk_enqueue_get_the_first_ones_id(make_queue: QueueFactory) -> None:
    queue = make_queue()
    held = await SyncAccountJob.perform_later({"account": "b"})
    ids = await SyncAccountJob.perform_bulk([{"account": key} for key in ("a", "b", "a", "c", "b", "a")])
    a, b, c = ids[0], ids[1], ids[3]
    assert ids == [a, b, a, c, b, a] and b == held and len({a, b, c}) == 3
    assert rows(queue, "SyncAccountJob") == 3


async def test_a_period_key_holds_for_its_window_whatever_became_of_the_job(make_queue: QueueFactory) -> None:
    clock = FrozenClock()
    queue = make_queue(clock=clock)
    first = await HourlyReportJob.perform_later({"account": "acme"})
    await queue.work_one(first)
    assert (await queue.get_job(first)).status == JobStatus.COMPLETED
    clock.advance(59 * 60)
    assert await HourlyReportJob.perform_later({"account": "acme"}) == first
    clock.advance(60)  # the next hour's window
    assert await HourlyReportJob.perform_later({"account": "acme"}) != first


async def test_an_explicit_unique_key_makes_any_job_unique(make_queue: QueueFactory) -> None:
    queue = make_queue()
    first = await NoopJob.perform_later({"n": 1}, unique_key="nightly")
    assert await NoopJob.perform_later({"n": 2}, unique_key="nightly") == first
    assert await NoopJob.perform_later({"n": 2}) != first  # no key: no uniqueness
    assert (await queue.get_job(first)).unique_key == "nightly"
    with pytest.raises(JobRequestError, match="unique_key must be a non-empty string, got ''"):
        await NoopJob.perform_later({"n": 3}, unique_key="")


async def test_retrying_a_failed_job_whose_key_another_holds_is_refused(make_queue: QueueFactory) -> None:
    queue = make_queue()
    first = await SyncAccountJob.perform_later({"account": "acme"})
    await queue.cancel_job(first)
    holder = await SyncAccountJob.perform_later({"account": "acme"})
    with pytest.raises(InvalidJobStateError, match=f"job {holder} holds its unique key"):
        await queue.retry_job(first)
    assert (await queue.get_job(first)).status == JobStatus.CANCELLED


@pytest.mark.parametrize(("unique", "problem"), [
    (Unique(while_=("pending",)), "Unique\\(while_=\\('pending',\\)\\) is not supported"),
    (Unique(period=timedelta(0)), "Unique\\(period=...\\) must be a positive timedelta"),
    (Unique(on_duplicate="ignore"), "Unique\\(on_duplicate=...\\) must be 'return' or 'raise', got 'ignore'"),  # type: ignore[arg-type]
])
def test_unsupported_options_fail_at_definition(unique: Unique, problem: str) -> None:
    with pytest.raises(JobDefinitionError, match=f"job 'BadUniqueJob': option 'unique': {problem}"):

        @job(name="BadUniqueJob", unique=unique)
        class BadUniqueJob(BaseJob[Nothing]):
            async def perform(self, payload: Nothing) -> None:
                pass


def test_eight_threads_enqueueing_the_same_keys_get_one_job_per_key(make_queue: QueueFactory) -> None:
    queue = make_queue()
    keys = [f"k{n}" for n in range(40)]

    def enqueue_all(_: int) -> list[int]:
        return [SyncAccountJob.perform_later_sync({"account": key}) for key in keys]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(enqueue_all, range(8)))
    assert all(ids == results[0] for ids in results)
    assert len(set(results[0])) == len(keys) == rows(queue, "SyncAccountJob")


@pytest.mark.slow
def test_two_processes_of_four_threads_enqueueing_the_same_keys_get_one_job_per_key(
    make_queue: QueueFactory, database_url: str,
) -> None:
    queue = make_queue()
    queue.store.ensure_schema()
    script = textwrap.dedent("""
        import json, sys
        from concurrent.futures import ThreadPoolExecutor
        from __tests__.support.jobs import JOBS, SyncAccountJob
        from main.services.job_queue import JobQueue, set_job_queue
        from main.settings import Settings
        set_job_queue(JobQueue(Settings.load(database_url=sys.argv[1]), jobs=JOBS))
        keys = [f"k{n}" for n in range(60)]
        def enqueue_all(_):
            return [SyncAccountJob.perform_later_sync({"account": key}) for key in keys]
        with ThreadPoolExecutor(4) as pool:
            found = list(pool.map(enqueue_all, range(4)))
        print(json.dumps(found))
    """)
    processes = [subprocess.Popen([sys.executable, "-c", script, database_url], cwd=ROOT, stdout=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    results = [json.loads(process.communicate(timeout=120)[0]) for process in processes]
    every = [ids for found in results for ids in found]
    assert all(ids == every[0] for ids in every)
    assert len(set(every[0])) == 60 == rows(queue, "SyncAccountJob")


async def test_a_bulk_retry_skips_the_jobs_whose_key_another_holds(make_queue: QueueFactory) -> None:
    queue = make_queue()
    blocked = await SyncAccountJob.perform_later({"account": "acme"})
    free = await SyncAccountJob.perform_later({"account": "globex"})
    await queue.cancel_job(blocked)
    await queue.cancel_job(free)
    await SyncAccountJob.perform_later({"account": "acme"})  # holds acme now
    assert queue.retry_jobs_sync(JobFilter((JobStatus.CANCELLED,))) == 1
    assert [(await queue.get_job(i)).status for i in (blocked, free)] == [JobStatus.CANCELLED, JobStatus.PENDING]


async def test_a_key_function_that_raises_is_a_clear_error_and_writes_nothing(make_queue: QueueFactory) -> None:
    queue = make_queue()

    @job(name="BrokenKeyJob", unique=Unique(key=lambda payload: payload.n / 0))
    class BrokenKeyJob(BaseJob[Nothing]):
        async def perform(self, payload: Nothing) -> None:
            pass

    queue.register(BrokenKeyJob)
    queue.store.ensure_schema()
    with pytest.raises(JobRequestError, match="'BrokenKeyJob': a key function of its options .* raised "
                                              "ZeroDivisionError: division by zero"):
        await BrokenKeyJob.perform_later({"n": 1})
    assert rows(queue, "BrokenKeyJob") == 0
