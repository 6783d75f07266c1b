"""The workers table (`jobqueue workers`, `jobqueue status`): a worker registers when it starts, beats while it
runs, is gone when it stops; the row of a worker that died is not listed and is pruned."""

import json
import os
import signal
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from __tests__.conftest import wait_for
from __tests__.support.jobs import SleepJob
from __tests__.test_worker import eventually, running
from main.db.entities import WorkerRow
from main.services.job_queue import JobQueue

pytestmark = pytest.mark.anyio


def rows(queue: JobQueue) -> int:
    with queue.database.read() as session:
        return session.execute(select(func.count()).select_from(WorkerRow)).scalar_one()


async def test_a_running_worker_is_listed_with_its_jobs_and_gone_when_it_stops(queue: JobQueue) -> None:
    assert queue.get_workers_sync() == []
    async with running(queue):
        job_id = await SleepJob.perform_later({"seconds": 30})
        [(worker, busy)] = await eventually(lambda: (found := queue.get_workers_sync()) and found[0][1] and found)
        assert (worker.id, worker.pid, worker.concurrency, worker.queues, busy) == (
            queue.worker_id, os.getpid(), queue.settings.concurrency, [], 1)
        assert queue.get_status_sync().workers == [(worker, 1)]
        await queue.cancel_job(job_id)
    assert queue.get_workers_sync() == [] and rows(queue) == 0


async def test_a_dead_workers_row_is_not_listed_and_is_pruned(queue: JobQueue) -> None:
    now = queue.clock.now()
    queue.store.ensure_schema()
    long_ago = now - timedelta(hours=1)
    queue.store.register_worker(WorkerRow(id="gone:1:abc", host="gone", pid=1, queues=[], concurrency=5,
                                          version="0", started_at=long_ago, heartbeat_at=long_ago))
    assert queue.get_workers_sync() == [] and rows(queue) == 1
    await queue.run(burst=True)  # its maintenance forgets workers that stopped beating
    assert rows(queue) == 0


@pytest.mark.slow
def test_jobqueue_workers_lists_the_worker_processes(queue: JobQueue, start_worker, database_url: str) -> None:
    from __tests__.test_cli import run_cli

    worker = start_worker(database_url, "--concurrency", "3", "--queue", "default", "--queue", "reports")
    listed = wait_for(lambda: (found := json.loads(run_cli(database_url, "workers", "--json").stdout)) and found)
    assert [(w["pid"], w["concurrency"], w["queues"], w["running"]) for w in listed] == [
        (worker.pid, 3, ["default", "reports"], 0)]
    status = json.loads(run_cli(database_url, "status", "--json").stdout)
    assert [w["id"] for w in status["workers"]] == [listed[0]["id"]]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert json.loads(run_cli(database_url, "workers", "--json").stdout) == []
