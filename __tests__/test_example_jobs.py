"""The example jobs in main/jobs/ and the one-shot demo that the README's first command runs."""

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from __tests__.conftest import ROOT, QueueFactory
from main.clock import FrozenClock
from main.db.entities import JobStatus
from main.jobs import JOBS, DailyCleanupJob, EmailJob, ProcessOrder
from main.services.job_queue import load_jobs_module

pytestmark = pytest.mark.anyio


def test_the_explicit_list_is_what_the_worker_loads() -> None:
    assert load_jobs_module("main.jobs").JOBS == JOBS
    assert JOBS[:2] == [EmailJob, DailyCleanupJob] and len(JOBS) == 13  # + six resumable demo jobs, five checkout steps
    assert [ProcessOrder] == load_jobs_module("main.jobs").WORKFLOWS


async def test_email_to_a_flaky_gateway_retries_then_succeeds(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock, jobs=JOBS)
    job_id = await EmailJob.perform_later({"to": "ops@flaky.example", "subject": "hello"})
    for attempt, backoff in ((1, 1), (2, 2)):
        await queue.run(burst=True)
        job = queue.store.get(job_id)
        retry_at = clock.now() + timedelta(seconds=backoff)
        assert (job.status, job.attempts, job.run_at) == (JobStatus.PENDING, attempt, retry_at)
        clock.advance(backoff)
    await queue.run(burst=True)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 3)


async def test_email_to_a_dead_gateway_fails_after_its_retries(make_queue: QueueFactory, clock: FrozenClock) -> None:
    queue = make_queue(clock=clock, jobs=JOBS)
    job_id = await EmailJob.perform_later({"to": "ops@down.example", "subject": "hello"})
    for backoff in (1, 2, 4, 0):
        await queue.run(burst=True)
        clock.advance(backoff)
    job = queue.store.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 4)
    assert job.last_error == "MailerUnavailableError: gateway for down.example did not answer (attempt 4)"


async def test_daily_cleanup_deletes_old_jobs_and_is_scheduled_at_2am(make_queue: QueueFactory,
                                                                      clock: FrozenClock) -> None:
    queue = make_queue(clock=clock, jobs=JOBS, retention="365d")  # the worker's own cleanup leaves it to the job
    old = await EmailJob.perform_later({"to": "a@example.com", "subject": "old"})
    await queue.run(burst=True)
    clock.advance(31 * 86400)
    cleanup = await DailyCleanupJob.perform_later({"retention_days": 30})
    await queue.run(burst=True)  # the worker also enqueues the slot missed while none ran (31 days): it runs too
    remaining = {job.id: job for job in queue.store.list_jobs()}
    assert old not in remaining and remaining[cleanup].status == JobStatus.COMPLETED
    # It no longer enqueues itself: the workers do, at each slot; here the latest one missed.
    [scheduled] = [job for job in remaining.values() if job.id not in (old, cleanup)]
    assert scheduled.unique_key == "DailyCleanupJob@2030-01-31T02:00:00+00:00"
    assert scheduled.status == JobStatus.COMPLETED and remaining[cleanup].result + scheduled.result == 1
    schedule = queue.schedules["DailyCleanupJob"]
    assert schedule.next_slot(datetime(2030, 5, 1, 1, 0, tzinfo=UTC)) == datetime(2030, 5, 1, 2, 0, tzinfo=UTC)
    assert schedule.next_slot(datetime(2030, 12, 31, 23, 0, tzinfo=UTC)) == datetime(2031, 1, 1, 2, 0, tzinfo=UTC)


@pytest.mark.slow
def test_the_basics_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    result = subprocess.run(
        [sys.executable, "-m", "main.cli", "demo", "basics"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rejected before writing anything" in result.stdout
    assert "worker stopped by SIGTERM, exit code 0" in result.stdout
    assert "failed after 4 attempts" in result.stdout
    assert "jobs by queue and status" in result.stdout


@pytest.mark.slow
def test_the_workflows_demo_fails_a_run_and_completes_it_after_the_retry(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "main.cli", "demo", "workflows"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = re.findall(r"run (\d+) · shop/process_order@1.0.0 · (\w+)", result.stdout)
    assert [status for _, status in runs] == ["completed", "failed", "completed"]
    failed_part = result.stdout.split("3. restock")[0].split(f"run {runs[1][0]} ·")[1]
    assert re.search(r"✗ update_inventory\s+│ failed .*out of stock", failed_part)
    assert re.search(r"- send_confirmation\s+│ cancelled", failed_part)
    assert re.search(r"✓ send_confirmation\s+│ completed .*alan@example.com", result.stdout.split("3. restock")[1])
    assert re.search(r"✓ charge_payment\s+│ completed\s+│ validate_cart\s+│ 2/4", result.stdout)  # retried once
