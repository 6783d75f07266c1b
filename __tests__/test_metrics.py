"""Prometheus metrics and health probes, scraped over HTTP as Prometheus and a container runtime would: from the
ASGI app in-process (httpx), and from real worker processes (one, and a supervisor with several)."""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from __tests__.conftest import FAST, ROOT, QueueFactory, wait_for
from __tests__.support.continuation_jobs import JOBS as CONTINUATION_JOBS
from __tests__.support.continuation_jobs import ShortRunsJob
from __tests__.support.jobs import JOBS, FailingJob, LoopBlockingJob, NoopJob, SleepJob
from main.base.jobs.continuation import Checkpoint
from main.db.engine import Database
from main.db.entities import JobStatus
from main.demo.seed import create_tables
from main.metrics.exporter import worker_app
from main.metrics.health import readiness
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    """name -> {labels (sorted, pid dropped) -> value summed over processes}."""
    found: Samples = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            found[sample.name][labels] += sample.value
    return found


def job_labels(job_type: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"job_type": job_type, "queue": "default", **more}.items()))


@pytest.mark.anyio
async def test_a_scrape_counts_outcomes_and_reads_the_queues_from_the_database(make_queue: QueueFactory) -> None:
    queue = make_queue()
    app = worker_app(queue)
    ids = [await NoopJob.perform_later({"n": n}) for n in range(3)]
    await FailingJob.perform_later({})
    await NoopJob.perform_in(3600, {})  # scheduled: never due in this test
    await queue.run(burst=True)
    await NoopJob.perform_later({}, queue="backlog")  # due, no worker serves it now
    await anyio.sleep(0.05)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    metrics = parse(response.text)
    finished = metrics["jobqueue_jobs_finished_total"]
    assert finished[job_labels("NoopJob", outcome="completed")] == len(ids)
    assert finished[job_labels("FailingJob", outcome="retried")] == 1
    assert metrics["jobqueue_job_duration_seconds_count"][job_labels("NoopJob", outcome="completed")] == 3
    assert metrics["jobqueue_jobs_running"][job_labels("NoopJob")] == 0  # every start was matched by an end
    assert metrics["jobqueue_queue_scheduled"][(("queue", "default"),)] == 2  # the later one, and the retry
    assert metrics["jobqueue_queue_depth"][(("queue", "backlog"),)] == 1
    assert metrics["jobqueue_queue_oldest_due_age_seconds"][(("queue", "backlog"),)] > 0
    assert metrics["jobqueue_database_up"][()] == 1


def test_readiness_names_what_is_missing(tmp_path: Path, postgres_admin_url: str) -> None:
    empty = readiness(Database(f"sqlite:///{tmp_path / 'empty.db'}"))
    assert not empty.ok and "no jobqueue tables" in empty.problems[0]
    down = readiness(Database("postgresql://postgres@127.0.0.1:1/none"))
    assert not down.ok and "does not answer" in down.problems[0]


def checkpoint_of(queue: JobQueue, job_id: int) -> Checkpoint:
    return Checkpoint.model_validate(queue.store.get(job_id).checkpoint)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def jobqueue(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "main.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_a_worker_is_unhealthy_while_a_job_blocks_its_loop_and_healthy_again_after(
        sqlite_url: str, start_worker) -> None:  # the engine plays no part in it: SQLite only
    database_url = sqlite_url
    queue = set_job_queue(JobQueue(Settings.load(database_url=sqlite_url, **FAST), jobs=JOBS))
    port = free_port()
    worker = start_worker(database_url, "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                          JOBQUEUE_LEASE_SECONDS="2")
    wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200 if _answers(port) else None)
    env = {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_METRICS_PORT": str(port)}
    assert jobqueue("health", env=env).returncode == 0
    assert jobqueue("health", "--ready", env=env).returncode == 0
    job_id = LoopBlockingJob.perform_later_sync({"seconds": 6})
    status, body = wait_for(lambda: (found := get(f"http://127.0.0.1:{port}/healthz"))[0] == 503 and found)
    assert "event loop was blocked" in json.loads(body)["problems"][0]
    failing = jobqueue("health", env=env)
    assert failing.returncode == 1 and "blocked" in failing.stdout
    wait_for(lambda: queue.store.get(job_id).status == JobStatus.COMPLETED)
    wait_for(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200)
    worker.stop()
    gone = jobqueue("health", env=env)
    assert gone.returncode == 1 and "nothing answers" in gone.stdout


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_one_scrape_of_a_supervisor_shows_every_worker_process(queue: JobQueue, start_worker,
                                                               database_url: str) -> None:
    port = free_port()
    supervisor = start_worker(database_url, "--processes", "3", "--metrics-port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(port) and len(json.loads(get(f"{url}/healthz")[1])["workers"]) == 3)
    ids = SleepJob.perform_bulk_sync([{"seconds": 0.05}] * 60)
    wait_for(lambda: all(queue.store.get(job_id).status == JobStatus.COMPLETED for job_id in ids))
    ran_in = {queue.store.get(job_id).worker_id.split(":")[1] for job_id in ids}
    assert len(ran_in) >= 2  # several processes did the work ...

    def completed() -> float:
        return parse(get(f"{url}/metrics")[1])["jobqueue_jobs_finished_total"][job_labels("SleepJob",
                                                                                           outcome="completed")]

    assert wait_for(lambda: completed() == 60)  # ... and one scrape counts all of it
    health = json.loads(get(f"{url}/healthz")[1])
    victim = int(next(iter(health["workers"])))
    os.kill(victim, signal.SIGKILL)  # a dead process's counts stay; its place is taken by a new one
    wait_for(lambda: (workers := json.loads(get(f"{url}/healthz")[1])["workers"]) and len(workers) == 3
             and str(victim) not in workers)
    assert completed() == 60
    wait_for(lambda: get(f"{url}/healthz")[0] == 200)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0


@pytest.mark.anyio
async def test_resumable_jobs_count_their_resumptions_and_checkpoint_saves(make_queue: QueueFactory) -> None:
    queue = make_queue(jobs=[*JOBS, *CONTINUATION_JOBS])
    queue.store.ensure_schema()
    create_tables(queue.database)  # the items' log
    app = worker_app(queue)
    job_id = await ShortRunsJob.perform_later({"count": 12, "item_delay": 0.02})
    await queue.run(burst=True)
    saved = checkpoint_of(queue, job_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://worker") as client:
        metrics = parse((await client.get("/metrics")).text)
    assert saved.resumptions >= 2
    assert metrics["jobqueue_job_resumptions_total"][job_labels("ShortRunsJob")] == saved.resumptions
    assert metrics["jobqueue_checkpoint_saves_total"][job_labels("ShortRunsJob")] == saved.saves
    assert metrics["jobqueue_jobs_finished_total"][job_labels("ShortRunsJob", outcome="released")] == saved.resumptions
