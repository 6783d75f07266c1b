"""`jobqueue jobs ...`: inspect and act on single jobs, or on many at once (retry or cancel by filter)."""

import sys
from typing import Annotated, Any

import typer

from main.cli import AsJson, app, open_queue
from main.cli.output import console, print_job, print_jobs, print_json
from main.db.entities import JobStatus
from main.db.store import JobFilter
from main.errors import JobRequestError
from main.services.job_queue import JobQueue

jobs_app = typer.Typer(help="List, show, cancel and retry jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

JobId = Annotated[int, typer.Argument(metavar="ID", help="The job's id")]
SomeJobId = Annotated[int | None, typer.Argument(metavar="[ID]", help="The job's id; without it, the filters choose")]
Statuses = Annotated[list[JobStatus] | None, typer.Option("--status", help="Act on jobs of this status (repeatable)")]
Types = Annotated[list[str] | None, typer.Option("--type", help="Only jobs of this type (repeatable)")]
Queues = Annotated[list[str] | None, typer.Option("--queue", help="Only jobs of this queue (repeatable)")]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (scripts)")]


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
def cancel(job_id: SomeJobId = None, status: Statuses = None, job_type: Types = None, queue: Queues = None,
           yes: Yes = False, as_json: AsJson = False) -> None:
    """Cancel job ID (a running one: its worker stops it), or every job of --status pending / running, of
    --type and --queue if given (asks first, unless --yes)."""
    jq = open_queue()
    if job_id is None:
        which = _bulk(status, job_type, queue, JobStatus.PENDING, JobStatus.RUNNING, verb="cancel")
        if (matched := _confirmed(jq, which, "cancel", yes, as_json)) is not None:
            cancelled, asked = jq.cancel_jobs_sync(which)
            _report(as_json, {"matched": matched, "cancelled": cancelled, "asked_to_stop": asked},
                    f"{cancelled} jobs cancelled, {asked} running ones asked to stop")
        return
    _one_job(status, job_type, queue)
    new_status = jq.cancel_job_sync(job_id)
    if as_json:
        print_json({"id": job_id, "status": new_status.value, "cancel_requested": new_status == JobStatus.RUNNING})
    elif new_status == JobStatus.RUNNING:
        console.print(f"job {job_id} is running: its worker will cancel it within one poll interval")
    else:
        console.print(f"job {job_id} cancelled")


@jobs_app.command("retry")
def retry(job_id: SomeJobId = None, status: Statuses = None, job_type: Types = None, queue: Queues = None,
          yes: Yes = False, as_json: AsJson = False) -> None:
    """Run job ID again with a fresh retry budget (a resumable job keeps its checkpoint), or every job of
    --status failed / cancelled, of --type and --queue if given (asks first, unless --yes)."""
    jq = open_queue()
    if job_id is None:
        which = _bulk(status, job_type, queue, JobStatus.FAILED, JobStatus.CANCELLED, verb="retry")
        if (matched := _confirmed(jq, which, "retry", yes, as_json)) is not None:
            retried = jq.retry_jobs_sync(which)
            _report(as_json, {"matched": matched, "retried": retried}, f"{retried} jobs are pending again")
        return
    _one_job(status, job_type, queue)
    jq.retry_job_sync(job_id)
    if as_json:
        print_json({"id": job_id, "status": JobStatus.PENDING.value})
    else:
        console.print(f"job {job_id} is pending again")


def _bulk(status: list[JobStatus] | None, job_type: list[str] | None, queue: list[str] | None,
          *allowed: JobStatus, verb: str) -> JobFilter:
    which = JobFilter(tuple(status or ()), tuple(job_type or ()), tuple(queue or ()))
    which.only(*allowed, verb=verb)
    return which


def _one_job(*filters: list[Any] | None) -> None:
    if any(filters):
        raise JobRequestError("give either a job ID or --status/--type/--queue to act on many jobs, not both")


def _confirmed(jq: JobQueue, which: JobFilter, verb: str, yes: bool, as_json: bool) -> int | None:
    """How many jobs match, once the user agreed to act on them (None: nothing to do, or declined)."""
    matched = jq.store.count_matching(which)
    if matched == 0:
        _report(as_json, {"matched": 0}, f"no jobs match; nothing to {verb}")
        return None
    if yes:
        return matched
    if not sys.stdin.isatty():
        raise JobRequestError(f"{matched} jobs match; add --yes to {verb} them (there is no terminal to ask on)")
    return matched if typer.confirm(f"{verb} {matched} jobs?") else None


def _report(as_json: bool, data: dict[str, int], line: str) -> None:
    if as_json:
        print_json(data)
    else:
        console.print(line)
