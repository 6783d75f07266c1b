"""The `jobqueue` command line. User mistakes exit 1 with one line on stderr, never a traceback."""

import sys
from typing import Annotated, Any

import typer
from sqlalchemy.exc import DBAPIError

from main.db.engine import describe_database_error
from main.errors import JobQueueError
from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

app = typer.Typer(
    name="jobqueue",
    help="Background jobs that survive deploys. Settings come from JOBQUEUE_* variables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

JobsModule = Annotated[
    str | None,
    typer.Option("--jobs-module", help="Module whose JOBS list registers the jobs [env JOBQUEUE_JOBS_MODULE]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def open_queue(jobs_module: str | None = None, **overrides: Any) -> JobQueue:
    """Build this process's queue from the environment plus command-line overrides."""
    if jobs_module:
        overrides["jobs_module"] = jobs_module
    queue = set_job_queue(JobQueue(open_settings(**overrides)))
    if queue.settings.otel:
        from main.tracing import instrument  # the otel extra: only imported when asked for

        instrument(queue)
    return queue


def open_settings(**overrides: Any) -> Settings:
    """The settings from the environment plus the command-line overrides given (None: not given); logging set up."""
    settings = Settings.load(**{key: value for key, value in overrides.items() if value is not None})
    configure_logging(settings.log_format, settings.log_level)
    return settings


def main() -> None:
    """Console-script entry point."""
    from main.cli import (  # noqa: F401  (registers the commands on `app`)
        batches,
        commands,
        dashboard,
        db,
        demo,
        jobs,
        queues,
        schedules,
        workflows,
    )

    try:
        app()
    except BaseException as exc:
        line = explain(exc)
        if line is None:
            raise
        typer.echo(f"error: {line}", err=True)
        sys.exit(1)


def explain(exc: BaseException) -> str | None:
    """The one line to print for a user or environment mistake, also from inside an exception group (a worker's
    parts run in task groups); None for anything else, which is a bug and keeps its traceback."""
    if isinstance(exc, BaseExceptionGroup):
        return next((line for inner in exc.exceptions if (line := explain(inner)) is not None), None)
    if isinstance(exc, JobQueueError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        return f"the database refused: {describe_database_error(exc)}"
    return None
