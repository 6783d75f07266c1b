"""The `jobqueue` command line. User mistakes exit 1 with one line on stderr, never a traceback."""

import sys
from typing import Annotated, Any

import typer
from sqlalchemy.exc import OperationalError

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
    settings = Settings.load(**{key: value for key, value in overrides.items() if value is not None})
    configure_logging(settings.log_format, settings.log_level)
    return set_job_queue(JobQueue(settings))


def main() -> None:
    """Console-script entry point."""
    from main.cli import commands, demo, jobs  # noqa: F401  (registers the commands on `app`)

    try:
        app()
    except JobQueueError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OperationalError as exc:
        typer.echo(f"error: the database is unavailable: {exc.orig}", err=True)
        sys.exit(1)
