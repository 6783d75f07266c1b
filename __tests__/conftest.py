"""Fixtures: a fresh SQLite file or PostgreSQL database per test, queues with short intervals, worker processes.

PostgreSQL tests use the local server (JOBQUEUE_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1/test),
each in a database of its own that the fixture creates and drops. Without a reachable server they are
skipped with the reason, except under CI=true, where that is a failure.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from hypothesis import settings as hypothesis_settings
from psycopg import sql

from __tests__.support.jobs import JOBS
from main.clock import FrozenClock
from main.demo.worker_process import WorkerProcess
from main.services.job_queue import JobQueue, reset_job_queue, set_job_queue
from main.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG_CANDIDATES = [
    os.environ.get("JOBQUEUE_TEST_POSTGRES_URL", ""),
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
]
# Under CI the property tests draw the same examples every run: a failure there is reproducible, never luck.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")

FAST = {"poll_interval": 0.02, "lease_seconds": 2.0, "shutdown_timeout": 0.5, "cleanup_interval": 3600.0}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No JOBQUEUE_* variable of the developer's shell leaks into a test; no queue outlives one."""
    for name in list(os.environ):
        if name.startswith("JOBQUEUE_") and name != "JOBQUEUE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    yield
    reset_job_queue()
    structlog.reset_defaults()  # a test that configured logging (to its captured stderr) leaves nothing behind


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problems = []
    for url in filter(None, PG_CANDIDATES):
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error as exc:
            problems.append(f"{url}: {str(exc).strip()}")
    reason = "no PostgreSQL server reachable (" + "; ".join(problems) + ")"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of this test's own, dropped afterwards."""
    name = f"jobqueue_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = postgres_admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


QueueFactory = Callable[..., JobQueue]


@pytest.fixture
def make_queue(database_url: str) -> Iterator[QueueFactory]:
    """Build a JobQueue on the test's database with short intervals; the first one built is the singleton."""
    built: list[JobQueue] = []

    def factory(clock: Any = None, jobs: Any = JOBS, schedules: Any = (), workflows: Any = (),
                **settings: Any) -> JobQueue:
        queue = JobQueue(Settings.load(database_url=database_url, **{**FAST, **settings}), clock=clock, jobs=jobs,
                         schedules=schedules, workflows=workflows)
        if not built:
            set_job_queue(queue)
        built.append(queue)
        return queue

    yield factory
    for queue in built:
        queue.close()


@pytest.fixture
def queue(make_queue: QueueFactory) -> JobQueue:
    return make_queue()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(database_url: str, *args: str, **env: str) -> WorkerProcess:
        """A worker process on `database_url` running the test jobs, with JSON logs kept in a file."""
        settings = {"PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": database_url,
                    "JOBQUEUE_JOBS_MODULE": "__tests__.support.jobs", "JOBQUEUE_POLL_INTERVAL": "0.02",
                    "JOBQUEUE_LOG_FORMAT": "json", **env}
        worker = WorkerProcess(settings, *args, output=tmp_path / f"worker{len(workers)}.log", cwd=ROOT)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop(signal.SIGKILL)


def run_cli(database_url: str, jobs_module: str, *args: str) -> str:
    """`jobqueue ARGS` in a process of its own on `database_url` (160 columns wide); its output. A non-zero exit
    fails the test with its stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": database_url,
           "JOBQUEUE_JOBS_MODULE": jobs_module, "COLUMNS": "160"}
    done = subprocess.run([sys.executable, "-m", "main.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_started(*workers: WorkerProcess, timeout: float = 30) -> None:
    """Until each worker process has logged worker_started: on a loaded machine one may start so late that the
    others have run every job before it claims any."""
    wait_for(lambda: all("worker_started" in worker.logs() for worker in workers), timeout=timeout)


def wait_for(condition: Callable[[], Any], timeout: float = 20, interval: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {condition}")
