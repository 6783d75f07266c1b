"""Real worker processes: exactly-once across two processes, SIGTERM mid-job, kill -9 and lease recovery."""

import signal
from collections import Counter
from pathlib import Path

import pytest

from __tests__.conftest import wait_for
from __tests__.support.jobs import JOBS, RecordJob, SleepJob
from main.base.jobs import JobRequest
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue
from main.settings import Settings

pytestmark = pytest.mark.slow


def executions(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


def sleeper_in_a_worker(start_worker, database_url: str, trace: Path, seconds: float, **env: str):  # type: ignore[no-untyped-def]
    """Enqueue a SleepJob, start a worker process, return once the job has started in it."""
    job_id = SleepJob.perform_later_sync({"seconds": seconds, "path": str(trace)})
    worker = start_worker(database_url, **env)
    wait_for(lambda: executions(trace))
    return job_id, worker


@pytest.mark.parametrize("jobs", [2000])
def test_two_workers_run_each_job_exactly_once(
    queue: JobQueue, start_worker, database_url: str, tmp_path: Path, jobs: int
) -> None:
    record = tmp_path / "executions"
    ids = RecordJob.perform_bulk_sync([{"path": str(record)}] * jobs)
    workers = [start_worker(database_url, "--burst", "--concurrency", "8") for _ in range(2)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    ran = [int(line.split()[0]) for line in executions(record)]
    assert sorted(ran) == ids  # every job once: none lost, none twice
    status = queue.get_status_sync().counts_by_status
    assert status["completed"] == jobs
    per_worker = [worker.logs().count('"job_completed"') for worker in workers]
    assert sum(per_worker) == jobs


@pytest.mark.parametrize(
    ("seconds", "shutdown_timeout", "expected", "last_line"),
    [
        (60, "0.3", (JobStatus.PENDING, 0), "started"),  # interrupted: back to pending, attempt not counted
        (0.5, "10", (JobStatus.COMPLETED, 1), "finished"),  # finishes within the shutdown timeout
    ],
    ids=["interrupted", "drained"],
)
def test_sigterm_mid_job_leaves_nothing_running(
    queue: JobQueue, start_worker, database_url: str, tmp_path: Path, seconds: float, shutdown_timeout: str,
    expected: tuple[JobStatus, int], last_line: str,
) -> None:
    trace = tmp_path / "trace"
    job_id, worker = sleeper_in_a_worker(
        start_worker, database_url, trace, seconds, JOBQUEUE_SHUTDOWN_TIMEOUT=shutdown_timeout
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == expected and job.lease_expires_at is None
    assert executions(trace)[-1].startswith(last_line)


def test_killed_workers_job_is_finished_by_another_after_the_lease(
    queue: JobQueue, start_worker, database_url: str, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    job_id, doomed = sleeper_in_a_worker(start_worker, database_url, trace, 1, JOBQUEUE_LEASE_SECONDS="1")
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    assert queue.store.get(job_id).status == JobStatus.RUNNING  # nobody told the database
    rescuer = start_worker(database_url, JOBQUEUE_LEASE_SECONDS="1")
    job = wait_for(lambda: (j := queue.store.get(job_id)).status == JobStatus.COMPLETED and j, timeout=30)
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0
    assert job.attempts == 2 and "stopped renewing its lease" in (job.last_error or "")
    assert [line.split()[0] for line in executions(trace)] == ["started", "started", "finished"]


def test_cancel_from_the_cli_stops_a_job_in_a_worker_process(
    queue: JobQueue, start_worker, database_url: str, tmp_path: Path
) -> None:
    from __tests__.test_cli import run_cli

    trace = tmp_path / "trace"
    job_id, worker = sleeper_in_a_worker(start_worker, database_url, trace, 60, JOBQUEUE_POLL_INTERVAL="0.1")
    result = run_cli(database_url, "jobs", "cancel", str(job_id))
    assert result.returncode == 0 and "will cancel it" in result.stdout
    wait_for(lambda: queue.store.get(job_id).status == JobStatus.CANCELLED, timeout=5)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_json_logs_carry_job_id_type_and_attempt(queue: JobQueue, start_worker, database_url: str) -> None:
    import json

    job_id = SleepJob.perform_later_sync({"seconds": 0})
    worker = start_worker(database_url, "--burst")
    assert worker.wait() == 0
    events = [json.loads(line) for line in worker.logs().splitlines() if line.startswith("{")]
    about_job = [event for event in events if event.get("job_id") == job_id]
    assert {event["event"] for event in about_job} >= {"job_started", "job_completed"}
    assert all(event["job_type"] == "SleepJob" and event["attempt"] == 1 for event in about_job)


@pytest.mark.postgres
def test_a_fleet_of_four_runs_ten_thousand_jobs_and_only_a_killed_workers_jobs_run_twice(
    start_worker, postgres_url: str, tmp_path: Path,
) -> None:
    """4 worker processes x 10,000 jobs on the real PostgreSQL server; one is killed with SIGKILL mid-run. Every job
    completes; every job runs exactly once but those the killed worker was running, which run twice at most."""
    queue = JobQueue(Settings.load(database_url=postgres_url), jobs=JOBS)
    trace = tmp_path / "trace"
    ids = queue.enqueue_many_sync([JobRequest(SleepJob, {"seconds": 0.001, "path": str(trace)})] * 10_000)
    fleet = [start_worker(postgres_url, "--concurrency", "20", JOBQUEUE_LEASE_SECONDS="1") for _ in range(4)]
    wait_for(lambda: len(executions(trace)) >= 6000, timeout=60)  # 3,000 jobs started and finished
    doomed = fleet.pop()
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    in_flight = {job.id for job in queue.store.list_jobs([JobStatus.RUNNING], limit=1000)
                 if (job.worker_id or "").split(":")[1] == str(doomed.pid)}
    assert in_flight  # killed mid-run
    wait_for(lambda: queue.get_status_sync().counts_by_status["completed"] == len(ids), timeout=120)
    for worker in fleet:
        worker.signal(signal.SIGTERM)
    assert [worker.wait() for worker in fleet] == [0, 0, 0]
    starts = Counter(int(line.split()[1]) for line in executions(trace) if line.startswith("started"))
    assert set(starts) == set(ids)  # nothing lost
    assert {job_id for job_id, n in starts.items() if n > 1} <= in_flight and max(starts.values()) <= 2
    queue.close()
