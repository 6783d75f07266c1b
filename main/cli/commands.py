"""Top-level commands: worker, enqueue, status, cleanup."""

import json
from datetime import datetime
from typing import Annotated

import anyio
import typer

from main.base.jobs import JobRequest
from main.cli import AsJson, JobsModule, app, open_queue
from main.cli.output import console, print_json, print_status
from main.errors import JobQueueError
from main.settings import parse_duration


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs run at once [env JOBQUEUE_CONCURRENCY]")] = None,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", help="Only these queues (repeatable); default all")
    ] = None,
    burst: Annotated[bool, typer.Option(help="Exit 0 once nothing is due (for cron, scripts and tests).")] = False,
    jobs_module: JobsModule = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (graceful; a second signal interrupts running jobs)."""
    job_queue = open_queue(jobs_module, concurrency=concurrency, queues=tuple(queue) if queue else None)
    anyio.run(lambda: job_queue.serve(burst=burst))


@app.command()
def enqueue(
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="Registered job name, e.g. EmailJob")],
    payload: Annotated[str, typer.Option(help="The payload as a JSON object")] = "{}",
    at: Annotated[str | None, typer.Option(help="Run at this ISO 8601 time with a timezone")] = None,
    in_: Annotated[str | None, typer.Option("--in", help="Run after this delay: seconds or 30s, 5m, 2h")] = None,
    jobs_module: JobsModule = None,
    as_json: AsJson = False,
) -> None:
    """Validate and enqueue one job."""
    job_queue = open_queue(jobs_module)
    job_class = job_queue.job_class(job_type)
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise JobQueueError(f"--payload is not valid JSON: {exc}") from None
    run_at = _parse_time(at) if at else None
    delay = _parse_delay(in_) if in_ else None
    [job_id] = job_queue.enqueue_many_sync([JobRequest(job_class, data, run_at=run_at, delay=delay)])
    if as_json:
        print_json({"id": job_id, "type": job_type})
    else:
        console.print(f"enqueued {job_type} as job {job_id}")


@app.command()
def status(jobs_module: JobsModule = None, as_json: AsJson = False) -> None:
    """Counts by queue and status, running jobs, registered job types."""
    print_status(open_queue(jobs_module).get_status_sync(), as_json)


@app.command()
def cleanup(as_json: AsJson = False) -> None:
    """Delete finished jobs older than JOBQUEUE_RETENTION now."""
    job_queue = open_queue()
    deleted = job_queue.cleanup_sync()
    if as_json:
        print_json({"deleted": deleted})
    else:
        console.print(f"deleted {deleted} finished job(s) older than {job_queue.settings.retention:g}s")


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise JobQueueError(f"--at {value!r} is not an ISO 8601 time such as 2030-01-31T02:00:00+00:00") from None


def _parse_delay(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise JobQueueError(f"--in: {exc}") from None
