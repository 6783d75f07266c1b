"""`jobqueue worker --processes N` with real processes: children restarted when they die, signals forwarded,
a child that keeps dying at start-up makes the supervisor give up with a non-zero exit."""

import json
import os
import signal
from pathlib import Path

import pytest

from __tests__.conftest import wait_for
from __tests__.support.jobs import SleepJob
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def events(worker, name: str) -> list[dict]:
    return [entry for line in worker.logs().splitlines() if line.startswith("{")
            and (entry := json.loads(line))["event"] == name]


def test_the_supervisor_restarts_a_dead_worker_and_stops_all_on_sigterm(
    queue: JobQueue, start_worker, database_url: str,
) -> None:
    supervisor = start_worker(database_url, "--processes", "2", "--concurrency", "4")
    first = wait_for(lambda: len(found := children(supervisor.pid)) == 2 and found)
    # Both up and claiming: on a loaded machine one may start after the other has run every job.
    wait_for(lambda: len(events(supervisor, "worker_started")) == 2)
    ids = SleepJob.perform_bulk_sync([{"seconds": 0.05}] * 40)
    wait_for(lambda: all(queue.store.get(job_id).status == JobStatus.COMPLETED for job_id in ids))
    assert len({queue.store.get(job_id).worker_id.split(":")[1] for job_id in ids}) == 2  # both processes worked
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(lambda: len(found := children(supervisor.pid)) == 2 and victim not in found and found)
    wait_for(lambda: len(events(supervisor, "worker_started")) == 3)  # the replacement is up and claiming
    more = SleepJob.perform_bulk_sync([{"seconds": 0.05}] * 20)
    wait_for(lambda: all(queue.store.get(job_id).status == JobStatus.COMPLETED for job_id in more))
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in replaced)
    [died] = events(supervisor, "worker_process_died")
    assert died["pid"] == victim and died["exit_code"] == -signal.SIGKILL
    assert len(events(supervisor, "worker_process_started")) == 3


def test_the_supervisor_gives_up_on_workers_that_keep_dying_at_start_up(start_worker, tmp_path: Path) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:1/jobs"  # every child fails to reach its database at once
    supervisor = start_worker(nowhere, "--processes", "2")
    assert supervisor.wait(timeout=60) == 1
    assert events(supervisor, "worker_process_keeps_dying")
    assert "the database refused: connection failed" in supervisor.logs()
