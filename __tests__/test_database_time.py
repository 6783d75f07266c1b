"""Database time: on PostgreSQL what is due and when a lease expires follow the server's clock, so a host whose
clock is minutes off neither steals live jobs nor delays (or hurries) due ones. Each skewed worker is shown
misbehaving with its clock taken as it is (the control), and behaving once the clock is the database's."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from __tests__.support.jobs import JOBS, NoopJob, SleepJob
from __tests__.test_worker import eventually, running, status_of
from main.base.jobs import JobRequest
from main.clock import FrozenClock, ServerClock, ShiftedClock, TimeReading
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

pytestmark = pytest.mark.anyio

TEN_MINUTES = 600.0


@pytest.fixture
def fleet(postgres_url: str) -> Iterator[Callable[..., JobQueue]]:
    """Queues on one PostgreSQL database, one per host: `fleet(skew=..., corrected=...)`. A corrected queue
    reads time as production does (ServerClock over its machine's clock); an uncorrected one takes its
    machine's clock as it is. The first one built is the process's singleton (perform_later goes there)."""
    built: list[JobQueue] = []

    def host(skew: float = 0.0, corrected: bool = True) -> JobQueue:
        queue = JobQueue(Settings.load(database_url=postgres_url, poll_interval=0.02, lease_seconds=2.0,
                                       shutdown_timeout=0.5), jobs=JOBS)
        machine = ShiftedClock(skew)
        queue.clock = ServerClock(machine, queue.database.server_time) if corrected else machine
        if not built:
            set_job_queue(queue)
        built.append(queue)
        return queue

    yield host
    for queue in built:
        queue.close()


@pytest.mark.postgres
async def test_a_worker_whose_clock_is_ahead_does_not_run_jobs_before_they_are_due(fleet) -> None:
    app = fleet()
    job_id = await NoopJob.perform_in(60, {"n": 1})
    await fleet(skew=TEN_MINUTES).run(burst=True)
    assert status_of(app, job_id) == JobStatus.PENDING
    await fleet(skew=TEN_MINUTES, corrected=False).run(burst=True)  # the control: its clock says it is due
    assert status_of(app, job_id) == JobStatus.COMPLETED


@pytest.mark.postgres
async def test_a_worker_whose_clock_is_behind_runs_due_jobs(fleet) -> None:
    app = fleet()
    job_id = await NoopJob.perform_later({"n": 1})
    await fleet(skew=-TEN_MINUTES, corrected=False).run(burst=True)  # the control: not due yet by its clock
    assert status_of(app, job_id) == JobStatus.PENDING
    await fleet(skew=-TEN_MINUTES).run(burst=True)
    assert status_of(app, job_id) == JobStatus.COMPLETED


@pytest.mark.postgres
async def test_a_worker_whose_clock_is_ahead_does_not_steal_live_jobs(fleet) -> None:
    app, ahead, control = fleet(), fleet(skew=TEN_MINUTES), fleet(skew=TEN_MINUTES, corrected=False)
    job_id = await SleepJob.perform_later({"seconds": 30})
    async with running(app):
        await eventually(lambda: status_of(app, job_id) == JobStatus.RUNNING)
        assert ahead.store.recover_expired(ahead.now()).total == 0
        assert status_of(app, job_id) == JobStatus.RUNNING
        assert control.store.recover_expired(control.now()).total == 1  # the control takes it for dead
        app.stop_now()


@pytest.mark.postgres
async def test_the_leases_of_a_worker_whose_clock_is_behind_are_not_taken_for_expired(fleet) -> None:
    app = fleet()
    for behind, stolen in ((fleet(skew=-TEN_MINUTES, corrected=False), 1), (fleet(skew=-TEN_MINUTES), 0)):
        [job_id] = await behind.enqueue_many([JobRequest(SleepJob, {"seconds": 30})])  # due by its clock
        async with running(behind):
            await eventually(lambda: status_of(app, job_id) == JobStatus.RUNNING)  # noqa: B023
            assert app.store.recover_expired(app.now()).total == stolen
            behind.stop_now()
        await app.cancel_job(job_id)


@pytest.mark.postgres
async def test_a_job_enqueued_by_a_host_whose_clock_is_ahead_is_due_at_once(fleet) -> None:
    app, control = fleet(skew=TEN_MINUTES), fleet(skew=TEN_MINUTES, corrected=False)
    [at_once] = await app.enqueue_many([JobRequest(NoopJob, {"n": 1})])
    [in_ten_minutes] = await control.enqueue_many([JobRequest(NoopJob, {"n": 2})])
    reading = app.database.server_time(app.clock)
    assert reading is not None
    server_now = reading.server
    assert abs(app.store.get(at_once).run_at - server_now) < timedelta(seconds=5)
    assert app.store.get(in_ten_minutes).run_at - server_now > timedelta(minutes=9)


@pytest.mark.postgres
def test_the_default_clock_of_a_queue_on_postgresql_is_the_servers(postgres_url: str) -> None:
    queue = JobQueue(Settings.load(database_url=postgres_url), jobs=JOBS)
    try:
        assert isinstance(queue.clock, ServerClock) and queue.clock.stale
        queue.now()
        assert not queue.clock.stale
    finally:
        queue.close()


def test_on_sqlite_the_clock_is_this_machines(sqlite_url: str) -> None:
    queue = JobQueue(Settings.load(database_url=sqlite_url), jobs=JOBS)
    assert isinstance(queue.clock, ServerClock)
    queue.sync_clock()
    assert queue.clock.offset == timedelta(0) and not queue.clock.stale  # and never asked again


def test_the_offset_is_measured_at_the_middle_of_the_round_trip_and_a_skew_is_reported_once() -> None:
    machine = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    answers = [datetime(2030, 1, 1, 0, 5, 0, 200_000, tzinfo=UTC), datetime(2030, 1, 1, 0, 5, 0, 600_000, tzinfo=UTC)]
    reported: list[float] = []

    def read_server_time(machine: FrozenClock) -> TimeReading:
        sent = machine.now()
        machine.advance(0.4)  # the round trip; the server read its clock half-way
        return TimeReading(sent, answers.pop(0), machine.now())

    clock = ServerClock(machine, read_server_time, reported.append)
    clock.sync()
    assert clock.offset == timedelta(minutes=5)
    assert clock.now() == machine.now() + timedelta(minutes=5)
    clock.sync()  # the server moved as much as the machine: the same offset, nothing new to report
    assert clock.offset == timedelta(minutes=5) and reported == [300.0]


def test_a_new_measure_of_the_offset_never_moves_time_back() -> None:
    """A resync under load may measure the offset a few ms smaller: a job enqueued just before must stay due
    (a burst worker once left jobs enqueued 3 ms earlier for later, and stopped)."""
    machine = FrozenClock()
    offsets = iter([timedelta(milliseconds=10), timedelta(milliseconds=2)])
    clock = ServerClock(machine, lambda m: TimeReading(m.now(), m.now() + next(offsets), m.now()))
    clock.sync()
    enqueued_at = clock.now()
    clock.sync()
    assert clock.now() >= enqueued_at
    machine.advance(1)
    assert clock.now() == machine.now() + timedelta(milliseconds=2)  # the new offset, once time has caught up


@pytest.mark.postgres
def test_connecting_is_left_out_of_the_round_trip_the_offset_is_measured_over(postgres_url: str) -> None:
    """A queue's first reading opens a connection (a few ms, far more under load): timed with the query, it made
    the server look ahead by half of it, so jobs enqueued by a new process were a little in the future for the
    workers and waited for their next poll. The server here runs on this machine: the true offset is 0."""
    queue = JobQueue(Settings.load(database_url=postgres_url), jobs=JOBS)
    event.listen(queue.database.engine, "connect", lambda *args: time.sleep(0.4))  # a slow connection
    try:
        queue.sync_clock()
        assert isinstance(queue.clock, ServerClock)
        assert abs(queue.clock.offset) < timedelta(milliseconds=50)
    finally:
        queue.close()
