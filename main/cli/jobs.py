"""`jobqueue jobs ...`: inspect and act on single jobs."""

from typing import Annotated

import typer

from main.cli import AsJson, app, open_queue
from main.cli.output import console, print_job, print_jobs, print_json
from main.db.entities import JobStatus

jobs_app = typer.Typer(help="List, show, cancel and retry jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

JobId = Annotated[int, typer.Argument(metavar="ID", help="The job's id")]


@jobs_app.command("list")
def list_jobs(
    status: Annotated[list[JobStatus] | None, typer.Option(help="Only these statuses (repeatable)")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 50,
    as_json: AsJson = False,
) -> None:
    """The newest jobs, optionally filtered."""
    print_jobs(open_queue().store.list_jobs(status or (), queue, limit), as_json)


@jobs_app.command("show")
def show(job_id: JobId, as_json: AsJson = False) -> None:
    """Everything stored about one job, including its last error and traceback."""
    print_job(open_queue().store.get(job_id), as_json)


@jobs_app.command("cancel")
def cancel(job_id: JobId, as_json: AsJson = False) -> None:
    """Cancel a pending job, or ask the worker running it to stop it."""
    new_status = open_queue().cancel_job_sync(job_id)
    if as_json:
        print_json({"id": job_id, "status": new_status.value, "cancel_requested": new_status == JobStatus.RUNNING})
    elif new_status == JobStatus.RUNNING:
        console.print(f"job {job_id} is running: its worker will cancel it within one poll interval")
    else:
        console.print(f"job {job_id} cancelled")


@jobs_app.command("retry")
def retry(job_id: JobId, as_json: AsJson = False) -> None:
    """Run a failed or cancelled job again, with a fresh retry budget (a resumable job keeps its checkpoint)."""
    open_queue().retry_job_sync(job_id)
    if as_json:
        print_json({"id": job_id, "status": JobStatus.PENDING.value})
    else:
        console.print(f"job {job_id} is pending again")
