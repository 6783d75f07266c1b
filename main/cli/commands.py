"""Top-level commands: worker, enqueue, status, cleanup."""

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from prometheus_client import CollectorRegistry

from main.base.jobs import JobRequest
from main.cli import AsJson, JobsModule, app, open_queue, open_settings
from main.cli.output import console, print_json, print_status, print_workers
from main.db.engine import Database
from main.errors import JobQueueError
from main.metrics import exporter
from main.metrics.health import ask_probe, readiness
from main.metrics.instruments import attach_metrics
from main.services.supervisor import Supervisor
from main.settings import parse_duration


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs run at once [env JOBQUEUE_CONCURRENCY]")] = None,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", help="Only these queues (repeatable); default all")
    ] = None,
    burst: Annotated[bool, typer.Option(help="Exit 0 once nothing is due (for cron, scripts and tests).")] = False,
    processes: Annotated[int, typer.Option(min=1, max=256, help="Worker processes on this machine, kept alive "
                                           "by this one (restarted if they die)")] = 1,
    metrics_port: Annotated[int | None, typer.Option(min=0, max=65535, help="Serve /metrics, /healthz and /readyz "
                                                     "on this port (0: any free one) [env JOBQUEUE_METRICS_PORT]")
                            ] = None,
    metrics_host: Annotated[str | None, typer.Option(help="Address the metrics port listens on "
                                                     "[env JOBQUEUE_METRICS_HOST, default 0.0.0.0]")] = None,
    jobs_module: JobsModule = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (graceful; a second signal interrupts running jobs)."""
    job_queue = open_queue(jobs_module, concurrency=concurrency, queues=tuple(queue) if queue else None,
                           metrics_port=metrics_port, metrics_host=metrics_host)
    port, host = job_queue.settings.metrics_port, job_queue.settings.metrics_host
    if processes > 1:
        child = [sys.executable, "-m", "main.cli", "worker", *_passed_on(concurrency, queue, burst, jobs_module)]
        if port is None:
            job_queue.close()  # the children open their own connections
            sys.exit(anyio.run(Supervisor(child, processes, job_queue.log).run))
        sys.exit(anyio.run(lambda: exporter.supervise(job_queue, child, processes, host=host, port=port)))
    if port is not None:
        anyio.run(lambda: exporter.serve_worker(job_queue, burst=burst, host=host, port=port))
    else:
        if exporter.child_of_a_supervisor():  # its supervisor serves the metrics
            attach_metrics(job_queue.events, CollectorRegistry())
        anyio.run(lambda: job_queue.serve(burst=burst))
    if job_queue.executions.abandoned:
        # Their threads cannot be stopped, and Python would wait for them at exit: leave without waiting.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _passed_on(concurrency: int | None, queues: list[str] | None, burst: bool, jobs_module: str | None) -> list[str]:
    """The worker options a supervisor hands on to each of its worker processes."""
    return [*(["--concurrency", str(concurrency)] if concurrency else []),
            *(arg for name in queues or () for arg in ("--queue", name)),
            *(["--burst"] if burst else []), *(["--jobs-module", jobs_module] if jobs_module else [])]


@app.command()
def enqueue(
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="Registered job name, e.g. EmailJob")],
    payload: Annotated[
        str, typer.Option(help="The payload as a JSON object; @file.json reads a file, - reads stdin")
    ] = "{}",
    at: Annotated[str | None, typer.Option(help="Run at this ISO 8601 time with a timezone")] = None,
    in_: Annotated[str | None, typer.Option("--in", help="Run after this delay: seconds or 30s, 5m, 2h")] = None,
    jobs_module: JobsModule = None,
    as_json: AsJson = False,
) -> None:
    """Validate and enqueue one job."""
    job_queue = open_queue(jobs_module)
    job_class = job_queue.job_class(job_type)
    data = _parse_payload(_read_payload(payload))
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
def workers(as_json: AsJson = False) -> None:
    """The live workers of the fleet: host, pid, queues, running jobs, last heartbeat."""
    print_workers(open_queue().get_workers_sync(), as_json)


@app.command()
def cleanup(as_json: AsJson = False) -> None:
    """Delete finished jobs older than JOBQUEUE_RETENTION now."""
    job_queue = open_queue()
    deleted = job_queue.cleanup_sync()
    if as_json:
        print_json({"deleted": deleted})
    else:
        console.print(f"deleted {deleted} finished job(s) older than {job_queue.settings.retention:g}s")


@app.command()
def health(
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Ask the worker serving --metrics-port here "
                                             "[env JOBQUEUE_METRICS_PORT]; without it, check readiness directly")
                    ] = None,
    host: Annotated[str, typer.Option(help="Where that worker listens")] = "127.0.0.1",
    ready: Annotated[bool, typer.Option("--ready", help="Readiness (/readyz) instead of liveness (/healthz)")] = False,
    as_json: AsJson = False,
) -> None:
    """Exit 0 if healthy, 1 if not, for container probes: a worker's /healthz (or /readyz) on its metrics port;
    with no port, whether the database answers and its tables are current."""
    settings = open_settings()
    port = port or settings.metrics_port
    if port is None:
        verdict = readiness(Database(settings.database_url, 1, settings.transaction_pooler)).document()
    else:
        verdict = ask_probe(f"http://{host}:{port}/{'readyz' if ready else 'healthz'}")
    if as_json:
        print_json(verdict)
    else:
        console.print(verdict["status"] if not verdict["problems"] else
                      f"{verdict['status']}: " + "; ".join(verdict["problems"]))
    raise typer.Exit(0 if verdict["status"] == "ok" else 1)


def _read_payload(value: str) -> str:
    """The JSON text given to --payload: inline, `@path` for a file, `-` for stdin (for payloads too big for a
    command line)."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise JobQueueError(f"--payload {value}: cannot read the file ({exc})") from None
    return value


def _parse_payload(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JobQueueError(f"--payload is not valid JSON: {exc}") from None
    except RecursionError:
        raise JobQueueError("--payload is nested too deeply to be read as JSON") from None


def _refuse_constant(name: str) -> None:
    raise JobQueueError(f"--payload holds {name}, which is not JSON (use null or a number)")


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
