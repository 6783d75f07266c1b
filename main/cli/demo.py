"""`jobqueue demo`: the core job system end to end, with a real worker process, on a fresh SQLite file.

Enqueues e-mails (one to a flaky gateway that fails twice and then succeeds, one to a gateway that is down
and fails for good), a scheduled cleanup, and shows that an invalid payload writes nothing. Then it starts
`jobqueue worker` as a separate process, waits for every job to settle, stops the worker with SIGTERM and
prints the status table.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from main.cli import app, open_queue
from main.cli.output import console, print_jobs, print_status
from main.db.entities import JobStatus
from main.errors import PayloadValidationError
from main.jobs import DailyCleanupJob, EmailJob
from main.services.job_queue import JobQueue

demo_app = typer.Typer(help="Demonstrations. Without a subcommand: the one-shot demo.", invoke_without_command=True)
app.add_typer(demo_app, name="demo")

SETTLE_TIMEOUT = 60.0


@demo_app.callback()
def one_shot(
    ctx: typer.Context,
    database: Annotated[Path, typer.Option(help="SQLite file for the demo; recreated on each run")] = Path(
        "jobqueue-demo.db"
    ),
) -> None:
    """Enqueue example jobs, run a real worker process until they settle, SIGTERM it, show the result."""
    if ctx.invoked_subcommand is not None:
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "JOBQUEUE_DATABASE_URL": f"sqlite:///{database}", "JOBQUEUE_POLL_INTERVAL": "0.2",
           "JOBQUEUE_JOBS_MODULE": "main.jobs", "JOBQUEUE_LOG_FORMAT": "console"}
    queue = open_queue(database_url=env["JOBQUEUE_DATABASE_URL"], poll_interval=0.2, jobs_module="main.jobs")

    console.rule("1. enqueue")
    ids = EmailJob.perform_bulk_sync(
        [{"to": f"customer{n}@example.com", "subject": "Welcome!", "body": "Thanks for signing up."} for n in (1, 2, 3)]
    )
    console.print(f"3 welcome e-mails in one transaction: jobs {ids}")
    flaky = EmailJob.perform_later_sync({"to": "ops@flaky.example", "subject": "Flaky gateway"})
    console.print(f"job {flaky}: e-mail through a gateway that fails twice, then works (retries 1s, 2s)")
    down = EmailJob.perform_later_sync({"to": "ops@down.example", "subject": "Gateway down"})
    console.print(f"job {down}: e-mail through a gateway that is down: 3 retries (1s, 2s, 4s), then failed")
    cleanup = DailyCleanupJob.perform_in_sync(2, {"retention_days": 30, "reschedule": False})
    console.print(f"job {cleanup}: DailyCleanupJob scheduled 2 seconds from now")
    try:
        EmailJob.perform_later_sync({"to": "not-an-address", "subject": ""})
    except PayloadValidationError as exc:
        console.print(f"rejected before writing anything: [red]{exc}[/red]")

    console.rule("2. a real worker process works through them")
    worker = subprocess.Popen([sys.executable, "-m", "main.cli", "worker"], env=env)
    try:
        _wait_until_settled(queue)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    console.print(f"worker stopped by SIGTERM, exit code {code}")

    console.rule("3. result")
    print_jobs(queue.store.list_jobs(limit=20), as_json=False)
    print_status(queue.get_status_sync(), as_json=False)
    failed = queue.store.get(down)
    console.print(f"job {down} failed after {failed.attempts} attempts; last error: {failed.last_error}")


def _wait_until_settled(queue: JobQueue) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        counts = queue.get_status_sync().counts_by_status
        if counts[JobStatus.PENDING] == counts[JobStatus.RUNNING] == 0:
            return
        time.sleep(0.25)
    raise TimeoutError(f"jobs did not settle within {SETTLE_TIMEOUT:g}s")
