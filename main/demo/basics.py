"""The core job system end to end: e-mails (one through a flaky gateway that fails twice then succeeds, one
through a gateway that is down), a scheduled cleanup, an invalid payload rejected before anything is written;
a real worker process works through them; SIGTERM stops it; the status table shows the result."""

import time

from main.cli.output import console, print_jobs, print_status
from main.db.entities import JobStatus
from main.demo.worker_process import WorkerProcess
from main.errors import PayloadValidationError
from main.jobs import DailyCleanupJob, EmailJob
from main.services.job_queue import JobQueue

SETTLE_TIMEOUT = 60.0


def run_basics(queue: JobQueue) -> None:
    console.rule("1. enqueue")
    ids = EmailJob.perform_bulk_sync(
        [{"to": f"customer{n}@example.com", "subject": "Welcome!", "body": "Thanks for signing up."} for n in (1, 2, 3)]
    )
    console.print(f"3 welcome e-mails in one transaction: jobs {ids}")
    flaky = EmailJob.perform_later_sync({"to": "ops@flaky.example", "subject": "Flaky gateway"})
    console.print(f"job {flaky}: e-mail through a gateway that fails twice, then works (retries 1s, 2s)")
    down = EmailJob.perform_later_sync({"to": "ops@down.example", "subject": "Gateway down"})
    console.print(f"job {down}: e-mail through a gateway that is down: 3 retries (1s, 2s, 4s), then failed")
    cleanup = DailyCleanupJob.perform_in_sync(2, {"retention_days": 30})
    console.print(f"job {cleanup}: DailyCleanupJob scheduled 2 seconds from now")
    try:
        EmailJob.perform_later_sync({"to": "not-an-address", "subject": ""})
    except PayloadValidationError as exc:
        console.print(f"rejected before writing anything: [red]{exc}[/red]")

    console.rule("2. a real worker process works through them")
    with WorkerProcess.for_settings(queue.settings) as worker:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not _settled(queue):
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs did not settle within {SETTLE_TIMEOUT:g}s")
            time.sleep(0.25)
    console.print(f"worker stopped by SIGTERM, exit code {worker.exit_code}")

    console.rule("3. result")
    print_jobs(queue.store.list_jobs(limit=20), as_json=False)
    print_status(queue.get_status_sync(), as_json=False)
    failed = queue.store.get(down)
    console.print(f"job {down} failed after {failed.attempts} attempts; last error: {failed.last_error}")


def _settled(queue: JobQueue) -> bool:
    counts = queue.get_status_sync().counts_by_status
    return counts[JobStatus.PENDING] == counts[JobStatus.RUNNING] == 0
