"""The CLI as people read it (issue 12, item 7): `jobs show` in reading order, `jobs list` readable at 80 columns,
no ANSI codes where the output is not a terminal."""

import pytest

from __tests__.conftest import FAST, wait_for
from __tests__.support.jobs import JOBS, FailingJob, NoopJob, SleepJob
from __tests__.test_cli import run_cli
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

LONG = "the printer is on fire, " * 6


@pytest.fixture
def ran(sqlite_url: str) -> tuple[str, int, int]:
    """A failed-once job with a long error and a completed one, run by a real worker process."""
    queue = set_job_queue(JobQueue(Settings.load(database_url=sqlite_url, **FAST), jobs=JOBS))
    failed, done = FailingJob.perform_later_sync({"message": LONG}), NoopJob.perform_later_sync({"n": 1})
    assert run_cli(sqlite_url, "worker", "--burst").returncode == 0
    queue.close()
    return sqlite_url, failed, done


def test_jobs_list_at_80_columns_keeps_ids_statuses_and_tries_whole(ran: tuple[str, int, int]) -> None:
    url, failed, done = ran
    listed = run_cli(url, "jobs", "list", COLUMNS="80").stdout
    lines = listed.splitlines()
    assert max(map(len, lines)) <= 80, listed
    [failed_row] = [line for line in lines if f" {failed} " in line and "FailingJob" in line]
    assert "pending" in failed_row and "1/3" in failed_row and "RuntimeError: the prin…" in failed_row
    assert any(f" {done} " in line and "completed" in line and "1/4" in line for line in lines)
    wide = run_cli(url, "jobs", "list", COLUMNS="160").stdout
    assert "queue" in wide and "default" in wide  # room for every column


def test_jobs_show_prints_the_fields_in_reading_order(ran: tuple[str, int, int]) -> None:
    url, failed, _ = ran
    shown = run_cli(url, "jobs", "show", str(failed)).stdout
    names = [line.split("│")[1].strip() for line in shown.splitlines() if line.count("│") == 3]
    fields = [name for name in names if name]
    assert fields[:8] == ["id", "type", "status", "queue", "priority", "attempts", "max_retries", "run_at"]
    assert fields.index("worker_id") < fields.index("payload") < fields.index("last_error") < fields.index(
        "last_traceback") == len(fields) - 1
    assert "finished_at" not in fields  # empty fields are left out of the table; --json has them all


def test_no_ansi_codes_where_the_output_is_not_a_terminal(ran: tuple[str, int, int]) -> None:
    url, failed, _ = ran
    for args in (["jobs", "list"], ["jobs", "show", str(failed)], ["status"], ["queues"]):
        result = run_cli(url, *args, JOBQUEUE_LOG_FORMAT="console")
        assert "\x1b[" not in result.stdout + result.stderr, args
    worker = run_cli(url, "worker", "--burst", JOBQUEUE_LOG_FORMAT="console", JOBQUEUE_LOG_LEVEL="info")
    assert "worker_started" in worker.stderr and "\x1b[" not in worker.stderr


def test_workers_and_running_jobs_at_80_columns(sqlite_url: str, start_worker) -> None:  # type: ignore[no-untyped-def]
    queue = set_job_queue(JobQueue(Settings.load(database_url=sqlite_url, **FAST), jobs=JOBS))
    job_id = SleepJob.perform_later_sync({"seconds": 30})
    worker = start_worker(sqlite_url, JOBQUEUE_SHUTDOWN_TIMEOUT="0.1")
    wait_for(lambda: queue.store.get(job_id).status.value == "running")
    for args in (["workers"], ["status"]):
        shown = run_cli(sqlite_url, *args, COLUMNS="80").stdout
        assert max(map(len, shown.splitlines())) <= 80, shown
        [row] = [line for line in shown.splitlines() if f":{worker.pid}:" in line and "1/5" in line]
        worker_id = queue.store.get(job_id).worker_id
        assert worker_id and worker_id in row  # whole
    assert any(f" {job_id} " in line and "SleepJob" in line for line in shown.splitlines())  # status: running jobs
    worker.stop()
    queue.close()
