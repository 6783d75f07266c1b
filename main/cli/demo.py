"""`jobqueue demo ...`: the resumable-jobs demo. Without a subcommand: the one-shot interrupt -> checkpoint ->
resume story. The demo's database is JOBQUEUE_DATABASE_URL, or sqlite:///jobqueue-demo.db when that is unset."""

import json
import os
import signal
import socket
import time
from typing import Annotated, Any, Literal

import anyio
import typer
from rich.live import Live
from rich.table import Table

from main.base.jobs.continuation import Checkpoint
from main.cli import AsJson, app, open_queue
from main.cli.output import console, print_json
from main.db.entities import Job, JobStatus
from main.demo.catalog import DEMO_JOBS, DEMO_TYPES, demo_job
from main.demo.checks import exactly_once, setup_checks
from main.demo.display import dashboard, progress_table, shop_table
from main.demo.seed import drop_tables, reset_orders, seed
from main.errors import JobQueueError
from main.services.job_queue import JobQueue

DEMO_DATABASE = "sqlite:///jobqueue-demo.db"

demo_app = typer.Typer(help="The resumable-jobs demo. Without a subcommand: the one-shot story.",
                       invoke_without_command=True)
app.add_typer(demo_app, name="demo")


def demo_queue() -> JobQueue:
    """The queue of the demo: short intervals so that it moves quickly, the demo database unless one is set."""
    overrides: dict[str, Any] = {"jobs_module": "main.jobs"}
    defaults = {"database_url": DEMO_DATABASE, "poll_interval": 0.1, "lease_seconds": 3.0}
    for name, value in defaults.items():
        if f"JOBQUEUE_{name.upper()}" not in os.environ:
            overrides[name] = value
    queue = open_queue(**overrides)
    queue.store.ensure_schema()
    return queue


@demo_app.callback()
def one_shot(ctx: typer.Context) -> None:
    """Seed, run a worker process, interrupt it part-way, show the checkpoint, resume in a new worker, and
    prove every order was processed exactly once (about 20 s on the quick data)."""
    if ctx.invoked_subcommand is not None:
        return
    from main.demo.story import run_story

    queue = demo_queue()
    _clean(queue)
    if not run_story(queue):
        raise typer.Exit(1)


@demo_app.command("basics")
def basics() -> None:
    """The core job system: e-mails with retries, a scheduled job, a rejected payload, a worker process."""
    from main.demo.basics import run_basics

    queue = demo_queue()
    _clean(queue)
    run_basics(queue)


@demo_app.command("workflows")
def workflows() -> None:
    """The checkout workflow in a worker process: a run that completes (its payment retried), one that fails at
    its inventory step, and its retry once the stock is fixed (a few seconds)."""
    from main.demo.workflows import run_workflow_demo

    queue = demo_queue()
    _clean(queue)
    if not run_workflow_demo(queue):
        raise typer.Exit(1)


@demo_app.command("seed")
def seed_command(
    size: Annotated[Literal["quick", "full"], typer.Argument(help="quick: 100 orders; full: 10,000")] = "quick",
    all_pending: Annotated[bool, typer.Option(help="Start every order as pending.")] = False,
    reset_orders_only: Annotated[
        bool, typer.Option("--reset-orders", help="Keep the data; set every order back to pending, forget the logs.")
    ] = False,
) -> None:
    """Create the demo data (or reset its orders to pending)."""
    queue = demo_queue()
    if reset_orders_only:
        console.print(f"{reset_orders(queue.database)} orders reset to pending")
    else:
        seed(queue.database, size, all_pending=all_pending)
    console.print(shop_table(queue.database))


@demo_app.command("run")
def run_command(
    job_name: Annotated[str, typer.Argument(metavar="JOB", help=f"One of: {', '.join(DEMO_JOBS)}")],
    item_delay: Annotated[float, typer.Option(help="Simulated seconds of work per item")] = 0.02,
    enqueue_only: Annotated[bool, typer.Option(help="Only enqueue; let `jobqueue worker` run it.")] = False,
) -> None:
    """Enqueue a demo job and run it here, with a live progress bar (Ctrl-C interrupts it: try it)."""
    queue = demo_queue()
    job_class = demo_job(job_name)
    job_id = job_class.perform_later_sync({"item_delay": item_delay})
    console.print(f"enqueued {job_class.options.name} as job {job_id}")
    if enqueue_only:
        return

    async def work() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.serve)
            with Live(console=console, refresh_per_second=8) as live:
                while (row := await queue.get_job(job_id)).status in (JobStatus.PENDING, JobStatus.RUNNING):
                    live.update(progress_table([row]))
                    if queue.stopping:  # Ctrl-C: the job checkpoints and goes back to pending
                        break
                    await anyio.sleep(0.1)
                live.update(progress_table([await queue.get_job(job_id)]))
            queue.stop()

    anyio.run(work)


@demo_app.command("monitor")
def monitor(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes")] = 0.5,
    until_idle: Annotated[bool, typer.Option(help="Exit once no job is pending or running.")] = False,
) -> None:
    """Live progress bars per resumable job, the shop's numbers and the queue (Ctrl-C to leave)."""
    queue = demo_queue()
    with Live(dashboard(queue, DEMO_TYPES), console=console, refresh_per_second=4) as live:
        try:
            while True:
                live.update(dashboard(queue, DEMO_TYPES))
                counts = queue.get_status_sync().counts_by_status
                if until_idle and counts["pending"] == counts["running"] == 0:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return


@demo_app.command("interrupt")
def interrupt(
    after: Annotated[float | None, typer.Option(help="Wait this many seconds first")] = None,
    at_item: Annotated[int | None, typer.Option(help="Wait until a running demo job has done this many items")] = None,
    kill: Annotated[bool, typer.Option(help="SIGKILL instead of SIGTERM: no checkpoint at exit")] = False,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 120,
) -> None:
    """Send a real SIGTERM (or SIGKILL) to the worker processes on this machine that run demo jobs."""
    queue = demo_queue()
    deadline = time.monotonic() + timeout
    if after:
        time.sleep(after)
    while True:
        running = queue.store.list_jobs([JobStatus.RUNNING], types=DEMO_TYPES)
        if running and (at_item is None or max(_done(job) for job in running) >= at_item):
            break
        if time.monotonic() > deadline:
            raise JobQueueError("no running demo job got there in time; start one with `jobqueue demo run JOB "
                                "--enqueue-only` and `jobqueue worker`")
        time.sleep(0.05)
    signum = signal.SIGKILL if kill else signal.SIGTERM
    for pid in sorted(_local_pids(running)):
        os.kill(pid, signum)
        console.print(f"sent {signal.Signals(signum).name} to worker pid {pid}")
    for job in running:
        console.print(f"job {job.id} ({job.type}) was at item {_done(job)}")


@demo_app.command("checkpoint")
def checkpoint(
    job: Annotated[str, typer.Argument(metavar="JOB", help="A job id, or a demo job name for its newest job")],
    as_json: AsJson = False,
) -> None:
    """Show the checkpoint saved in a job's row: steps, cursor, done/total, resumptions."""
    queue = demo_queue()
    row = _find_job(queue, job)
    state = Checkpoint.model_validate(row.checkpoint or {})
    if as_json:
        print_json({"id": row.id, "type": row.type, "status": row.status.value, "checkpoint": row.checkpoint,
                    "summary": state.summary()})
        return
    console.print(progress_table([row], title=f"job {row.id}"))
    table = Table(title="steps")
    for column in ("step", "finished", "cursor", "done", "total"):
        table.add_column(column)
    for name, step in state.steps.items():
        table.add_row(name, str(step.finished), json.dumps(step.cursor), str(step.done), str(step.total))
    console.print(table)
    console.print(f"resumptions {state.resumptions}, checkpoints written {state.saves}, "
                  f"last interruption: {state.interrupted_by or '-'}")


@demo_app.command("compare")
def compare(
    item_delay: Annotated[float, typer.Option(help="Simulated seconds of work per item")] = 0.0,
    as_json: AsJson = False,
) -> None:
    """Both styles on the same data, each interrupted twice and resumed: time, checkpoints, overhead."""
    from main.demo.compare import compare_styles

    queue = demo_queue()
    runs = anyio.run(compare_styles, queue, item_delay)
    if as_json:
        print_json([run.__dict__ for run in runs])
        return
    table = Table(title="step style vs enumerator style (same data, each interrupted twice)")
    for column in ("job", "style", "items", "run time", "checkpoints", "overhead/item", "resumptions",
                   "log rows", "duplicates"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(run.job_type, run.style, str(run.items), f"{run.seconds:.2f} s", str(run.checkpoints),
                      f"{run.overhead_ms_per_item:.2f} ms", str(run.resumptions), str(run.processed),
                      str(run.duplicates))
    console.print(table)


@demo_app.command("verify")
def verify() -> None:
    """Check the set-up: Python, packages, database, tables, seeded data, registered jobs."""
    queue = demo_queue()
    checks = setup_checks(queue.database, queue.get_available_job_types(), DEMO_TYPES)
    table = Table(title="jobqueue demo: set-up check")
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for name, passed, detail in checks:
        table.add_row(name, "[green]yes[/green]" if passed else "[red]NO[/red]", detail)
    console.print(table)
    if not all(passed for _, passed, _ in checks):
        raise typer.Exit(1)


@demo_app.command("clean")
def clean() -> None:
    """Drop the demo's tables and delete the demo jobs' rows."""
    deleted = _clean(demo_queue())
    console.print(f"demo tables dropped, {deleted} demo job row(s) deleted")


@demo_app.command("proof")
def proof(as_json: AsJson = False) -> None:
    """For each demo job type: items processed, distinct items, duplicates (always 0 if all is well)."""
    queue = demo_queue()
    proofs = [exactly_once(queue.database, job_type) for job_type in DEMO_TYPES]
    if as_json:
        print_json([{**p.__dict__, "duplicates": p.duplicates} for p in proofs])
        return
    table = Table(title="exactly once")
    for column in ("job", "processed", "distinct", "duplicates"):
        table.add_column(column)
    for p in proofs:
        table.add_row(p.job_type, str(p.processed), str(p.distinct), str(p.duplicates))
    console.print(table)


def _clean(queue: JobQueue) -> int:
    drop_tables(queue.database)
    return queue.store.delete_jobs_of_types(DEMO_TYPES)


def _done(job: Job) -> int:
    return Checkpoint.model_validate(job.checkpoint or {}).items_done


def _local_pids(jobs: list[Job]) -> set[int]:
    """Worker ids are host:pid:nonce; only processes on this machine can be signalled from here."""
    host = socket.gethostname()
    return {int(job.worker_id.split(":")[1]) for job in jobs if job.worker_id and job.worker_id.split(":")[0] == host}


def _find_job(queue: JobQueue, job: str) -> Job:
    if job.isdigit():
        return queue.store.get(int(job))
    job_type = demo_job(job).options.name
    rows = queue.store.list_jobs(limit=1, types=[job_type])
    if not rows:
        raise JobQueueError(f"no {job_type} job yet; start one with `jobqueue demo run {job}`")
    return rows[0]
