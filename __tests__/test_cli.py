"""The `jobqueue` command line, run as a real process: tables, --json, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from __tests__.conftest import ROOT
from __tests__.support.jobs import FailingJob, NoopJob
from main.db.entities import JobStatus
from main.services.job_queue import JobQueue


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The CLI is a thin layer over the store, which runs on both engines elsewhere: SQLite here, PostgreSQL in
    test_the_cli_on_postgres (each CLI call is a process start, so the matrix is kept small)."""
    return sqlite_url


def run_cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": database_url,
        "JOBQUEUE_JOBS_MODULE": "__tests__.support.jobs", "JOBQUEUE_LOG_FORMAT": "json", "COLUMNS": "200", **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "main.cli", *args], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=60,
    )


def test_enqueue_list_show_and_status(queue: JobQueue, database_url: str) -> None:
    created = run_cli(database_url, "enqueue", "NoopJob", "--payload", '{"n": 5}', "--json")
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["id"]
    assert queue.store.get(job_id).payload == {"n": 5}

    listed = json.loads(run_cli(database_url, "jobs", "list", "--status", "pending", "--json").stdout)
    assert [(row["id"], row["type"], row["status"]) for row in listed] == [(job_id, "NoopJob", "pending")]
    shown = json.loads(run_cli(database_url, "jobs", "show", str(job_id), "--json").stdout)
    assert (shown["id"], shown["payload"], shown["attempts"]) == (job_id, {"n": 5}, 0)
    status = json.loads(run_cli(database_url, "status", "--json").stdout)
    assert status["counts_by_status"]["pending"] == 1 and "NoopJob" in status["registered_types"]

    table = run_cli(database_url, "jobs", "list")
    assert table.returncode == 0 and "NoopJob" in table.stdout and "pending" in table.stdout
    assert "jobs by queue and status" in run_cli(database_url, "status").stdout


def test_enqueue_scheduling_options(queue: JobQueue, database_url: str) -> None:
    at = run_cli(database_url, "enqueue", "NoopJob", "--at", "2031-05-01T10:00:00+02:00", "--json")
    later = run_cli(database_url, "enqueue", "NoopJob", "--in", "5m", "--json")
    assert at.returncode == later.returncode == 0
    assert queue.store.get(json.loads(at.stdout)["id"]).run_at.isoformat() == "2031-05-01T08:00:00+00:00"
    assert queue.store.get(json.loads(later.stdout)["id"]).status == JobStatus.PENDING


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "NoSuchJob"], "no job named 'NoSuchJob' is registered (registered: CountdownJob, EchoJob"),
        (["enqueue", "NoopJob", "--payload", "{bad"], "--payload is not valid JSON"),
        (["enqueue", "NoopJob", "--payload", '{"n": "x"}'], "invalid payload for job 'NoopJob'"),
        (["enqueue", "NoopJob", "--at", "2031-05-01T10:00:00"], "has no timezone"),
        (["enqueue", "NoopJob", "--at", "tomorrow"], "--at 'tomorrow' is not an ISO 8601 time"),
        (["enqueue", "NoopJob", "--in", "soon"], "--in: expected seconds"),
        (["jobs", "show", "424242"], "no job with id 424242"),
        (["jobs", "retry", "424242"], "no job with id 424242"),
    ],
)
def test_user_mistakes_exit_1_with_one_line(queue: JobQueue, database_url: str, args: list[str], message: str) -> None:
    result = run_cli(database_url, *args)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sum(n for _, _, n in queue.store.counts()) == 0  # nothing was written


def test_bad_setting_is_named(sqlite_url: str) -> None:
    result = run_cli(sqlite_url, "status", JOBQUEUE_CONCURRENCY="lots")
    assert result.returncode == 1 and "JOBQUEUE_CONCURRENCY" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli(sqlite_url, "worker", "--burst", "--jobs-module", "no_such_app.jobs")
    assert missing.returncode == 1 and "JOBQUEUE_JOBS_MODULE: cannot import 'no_such_app.jobs'" in missing.stderr


def test_cancel_retry_and_cleanup(queue: JobQueue, database_url: str) -> None:
    pending = NoopJob.perform_later_sync({"n": 1})
    cancelled = json.loads(run_cli(database_url, "jobs", "cancel", str(pending), "--json").stdout)
    assert cancelled == {"id": pending, "status": "cancelled", "cancel_requested": False}
    assert queue.store.get(pending).status == JobStatus.CANCELLED
    again = run_cli(database_url, "jobs", "cancel", str(pending))
    assert again.returncode == 1 and "already cancelled" in again.stderr

    assert run_cli(database_url, "jobs", "retry", str(pending)).returncode == 0
    job = queue.store.get(pending)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 0)
    not_failed = run_cli(database_url, "jobs", "retry", str(pending))
    assert not_failed.returncode == 1 and "only failed or cancelled jobs can be retried" in not_failed.stderr

    cleaned = run_cli(database_url, "cleanup", "--json", JOBQUEUE_RETENTION="0")
    assert json.loads(cleaned.stdout) == {"deleted": 0}  # the pending job is kept


def test_worker_burst_processes_and_exits_zero(queue: JobQueue, database_url: str) -> None:
    ok = NoopJob.perform_later_sync({"n": 1})
    bad = FailingJob.perform_later_sync({})
    result = run_cli(database_url, "worker", "--burst", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert queue.store.get(ok).status == JobStatus.COMPLETED
    assert queue.store.get(bad).attempts == 1  # failed once; the retry is 10 s away, so burst is done


def test_worker_queue_option(queue: JobQueue, database_url: str, tmp_path) -> None:
    from __tests__.support.jobs import PriorityJob

    report = PriorityJob.perform_later_sync({"path": str(tmp_path / "r")})
    default = NoopJob.perform_later_sync({"n": 1})
    assert run_cli(database_url, "worker", "--burst", "--queue", "reports").returncode == 0
    assert queue.store.get(report).status == JobStatus.COMPLETED
    assert queue.store.get(default).status == JobStatus.PENDING


def test_installed_console_script() -> None:
    from pathlib import Path

    script = Path(sys.executable).parent / "jobqueue"
    assert script.exists(), "pip install -e . should have installed the `jobqueue` console script"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("worker", "enqueue", "status", "jobs", "cleanup", "demo"):
        assert command in result.stdout


@pytest.mark.postgres
def test_the_cli_on_postgres(postgres_url: str) -> None:
    created = run_cli(postgres_url, "enqueue", "NoopJob", "--payload", '{"n": 1}', "--json")
    assert created.returncode == 0, created.stderr
    job_id = json.loads(created.stdout)["id"]
    assert run_cli(postgres_url, "worker", "--burst").returncode == 0
    shown = json.loads(run_cli(postgres_url, "jobs", "show", str(job_id), "--json").stdout)
    assert (shown["status"], shown["attempts"]) == ("completed", 1)
