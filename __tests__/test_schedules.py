"""Cron schedules: each slot is enqueued once however many workers look (a compare-and-set in the database);
slots missed while no worker ran are run once (the latest) or skipped, as the schedule says."""

import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from __tests__.conftest import ROOT, QueueFactory
from __tests__.support.jobs import JOBS, NoopJob, Nothing, RecordJob
from __tests__.test_cli import run_cli
from __tests__.test_worker import eventually, running
from main.base.jobs import BaseJob, JobRequest, Schedule, job
from main.clock import FrozenClock
from main.db.entities import Job, JobStatus
from main.errors import JobDefinitionError, JobRegistrationError, SettingsError
from main.services.job_queue import JobQueue, module_schedules
from main.services.worker import Worker

pytestmark = pytest.mark.anyio
START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)


def scheduled(queue: JobQueue) -> list[Job]:
    return [job for job in queue.store.list_jobs(limit=1000) if job.unique_key and "@" in job.unique_key]


async def test_three_workers_looking_at_every_slot_enqueue_each_slot_once(make_queue: QueueFactory) -> None:
    clock = FrozenClock(START)
    every_minute = Schedule(NoopJob, "* * * * *", payload={"n": 1}, name="tick")
    schedulers = [Worker(make_queue(clock=clock, schedules=[every_minute])).scheduler for _ in range(3)]
    assert [await s.look() for s in schedulers] == [[], [], []]  # a new schedule starts with its next slot
    enqueued = []
    for _ in range(4):
        clock.advance(60)
        for scheduler in schedulers:
            enqueued += await scheduler.look()
    queue = schedulers[0].store
    keys = [queue.get(job_id).unique_key for job_id in enqueued]
    assert keys == [f"tick@2030-01-01T00:0{minute}:00+00:00" for minute in (1, 2, 3, 4)]


async def test_missed_slots_run_the_latest_once_or_none(make_queue: QueueFactory) -> None:
    clock = FrozenClock(START)
    latest = Schedule(NoopJob, "*/5 * * * *", name="latest")
    skip = Schedule(NoopJob, "*/5 * * * *", name="skip", missed="skip")
    queue = make_queue(clock=clock, schedules=[latest, skip])
    scheduler = Worker(queue).scheduler
    await scheduler.look()
    clock.advance(3600 + 120)  # no worker for an hour: twelve slots passed, the latest two minutes ago
    [job_id] = await scheduler.look()
    assert queue.store.get(job_id).unique_key == "latest@2030-01-01T01:00:00+00:00"
    clock.advance(3 * 60)  # the next slot, seen 30 s after it: both run it
    assert len(await scheduler.look()) == 2
    assert queue.store.schedule_slots() == {"latest": START.replace(hour=1, minute=5, second=0),
                                            "skip": START.replace(hour=1, minute=5, second=0)}


async def test_a_schedule_in_a_time_zone_follows_its_clock(make_queue: QueueFactory) -> None:
    berlin = Schedule(NoopJob, "0 2 * * *", timezone="Europe/Berlin")
    assert berlin.next_slot(datetime(2030, 1, 10, 12, tzinfo=UTC)) == datetime(2030, 1, 11, 1, tzinfo=UTC)  # CET
    assert berlin.next_slot(datetime(2030, 7, 10, 12, tzinfo=UTC)) == datetime(2030, 7, 11, 0, tzinfo=UTC)  # CEST


async def test_the_worker_enqueues_and_runs_a_slot(make_queue: QueueFactory, tmp_path: Path) -> None:
    """Six fields: a slot every second, so that a real worker meets one within the test."""
    record = tmp_path / "runs"
    queue = make_queue(schedules=[Schedule(RecordJob, "* * * * * *", payload={"path": str(record)}, name="s")])
    async with running(queue):
        await eventually(lambda: record.exists() and record.read_text())
    [job] = scheduled(queue)[-1:]
    assert job.type == "RecordJob" and job.unique_key and job.unique_key.startswith("s@")


def test_bad_schedules_are_refused_with_what_is_wrong(make_queue: QueueFactory) -> None:
    with pytest.raises(JobDefinitionError, match="'61 \\* \\* \\* \\*' is not a cron expression: give five fields"):
        Schedule(NoopJob, "61 * * * *")
    with pytest.raises(JobDefinitionError, match="unknown time zone 'Mars/Olympus'"):
        Schedule(NoopJob, "* * * * *", timezone="Mars/Olympus")
    with pytest.raises(JobRegistrationError, match="schedule 'RecordJob': invalid payload for job 'RecordJob'"):
        make_queue(schedules=[Schedule(RecordJob, "* * * * *")])  # RecordJob needs a path
    with pytest.raises(JobRegistrationError, match="two schedules are named 'x'"):
        make_queue(schedules=[Schedule(NoopJob, "* * * * *", name="x"), Schedule(NoopJob, "0 * * * *", name="x")])
    with pytest.raises(JobRegistrationError, match="its job NoopJob is not registered"):
        make_queue(jobs=[RecordJob], schedules=[Schedule(NoopJob, "* * * * *")])
    with pytest.raises(JobDefinitionError, match="job 'BadCronJob': option 'cron': 'every day' is not a cron"):

        @job(name="BadCronJob", cron="every day")
        class BadCronJob(BaseJob[Nothing]):
            async def perform(self, payload: Nothing) -> None:
                pass


def test_jobqueue_schedules_lists_them_with_the_next_slot(sqlite_url: str) -> None:
    listed = run_cli(sqlite_url, "schedules", "--json", JOBQUEUE_JOBS_MODULE="__tests__.support.scheduled_jobs")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["job"], row["cron"], row["last_slot"]) == ("every-minute", "RecordJob", "* * * * *", None)
    assert datetime.fromisoformat(row["next_slot"]) - datetime.now(UTC) <= timedelta(minutes=1)


@pytest.mark.slow
def test_three_worker_processes_run_each_slot_once(make_queue: QueueFactory, database_url: str,
                                                   tmp_path: Path) -> None:
    """Real processes whose clocks run 60 times fast from one origin: a minute's slot every second."""
    queue = make_queue(jobs=JOBS)
    queue.store.ensure_schema()
    record = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": database_url,
           "JOBQUEUE_JOBS_MODULE": "__tests__.support.scheduled_jobs", "JOBQUEUE_POLL_INTERVAL": "0.05",
           "JOBQUEUE_LOG_LEVEL": "warning", "SCHEDULE_TEST_PATH": str(record),
           "FAST_CLOCK_ORIGIN": datetime.now(UTC).isoformat(), "FAST_CLOCK_SPEED": "60"}
    workers = [subprocess.Popen([sys.executable, "-m", "__tests__.support.fast_clock_worker"], cwd=ROOT, env=env)
               for _ in range(3)]
    try:
        anyio.run(eventually, lambda: record.exists() and len(record.read_text().splitlines()) >= 5, 60)
    finally:
        for worker in workers:
            worker.terminate()
        assert [worker.wait(30) for worker in workers] == [0, 0, 0]
    jobs = queue.store.list_jobs(types=["RecordJob"], limit=1000)
    slots = sorted(datetime.fromisoformat(job.unique_key.split("@")[1]) for job in jobs if job.unique_key)
    assert len(slots) == len(jobs) >= 5
    assert all(later - earlier == timedelta(minutes=1) for earlier, later in itertools.pairwise(slots))  # none twice
    runs = [line.split()[0] for line in record.read_text().splitlines()]
    assert len(runs) == len(set(runs))  # and each ran once
    assert {job.status for job in jobs} <= {JobStatus.COMPLETED, JobStatus.PENDING}


def test_of_eight_threads_moving_a_schedule_to_the_same_slot_one_enqueues(make_queue: QueueFactory) -> None:
    """The compare-and-set alone (the slot's job has no unique key here): the row lock, then the re-check."""
    queue = make_queue()
    store, now = queue.store, queue.now()
    store.start_schedule("s", START)
    job = queue._prepare([JobRequest(NoopJob, {"n": 1})])[0]
    for minute in range(1, 6):
        slot = START + timedelta(minutes=minute)
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: store.enqueue_slot("s", slot, job, now), range(8)))  # noqa: B023
        assert len([job_id for job_id in ids if job_id is not None]) == 1
    assert store.enqueue_slot("s", START + timedelta(minutes=3), job, now) is None  # an older slot: done
    assert len(queue.store.list_jobs(types=["NoopJob"])) == 5


def test_the_jobs_module_lists_its_schedules_as_SCHEDULES_or_schedules() -> None:
    every = Schedule(NoopJob, "* * * * *")
    for name in ("SCHEDULES", "schedules"):
        module = ModuleType("jobs_module")
        setattr(module, name, [every])
        assert module_schedules(module) == [every]
    module.SCHEDULES = [every]  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match="has both SCHEDULES and schedules; keep one list"):
        module_schedules(module)
    lonely = ModuleType("jobs_module")
    lonely.SCHEDULES = every  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match="SCHEDULES in module 'jobs_module' must be a list of Schedule"):
        module_schedules(lonely)


async def test_a_slot_whose_job_is_refused_is_logged_and_the_worker_goes_on(make_queue: QueueFactory) -> None:
    clock = FrozenClock(START)
    queue = make_queue(clock=clock, schedules=[Schedule(NoopJob, "* * * * *", name="tick")])
    scheduler = Worker(queue).scheduler
    await scheduler.once()

    def refuse(schedule: Schedule, slot: datetime) -> Any:
        raise JobRegistrationError("job 'NoopJob' is not registered with this queue")

    scheduler.job_for = refuse
    clock.advance(60)
    await scheduler.once()  # does not raise: the worker's task group would stop every part
    assert queue.store.list_jobs(types=["NoopJob"]) == []
