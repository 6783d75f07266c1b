"""`jobqueue queues ...`: every queue with its jobs by status; pause and resume one for the whole fleet."""

from typing import Annotated

import typer

from main.cli import AsJson, app, open_queue
from main.cli.output import print_queues

queues_app = typer.Typer(help="List queues; pause and resume them (every worker of the fleet obeys).",
                         invoke_without_command=True)
app.add_typer(queues_app, name="queues")

QueueName = Annotated[str, typer.Argument(metavar="NAME", help="The queue")]


@queues_app.callback()
def list_queues(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every queue that has jobs or is paused, with its jobs by status."""
    if ctx.invoked_subcommand is None:
        print_queues(open_queue().list_queues_sync(), as_json)


@queues_app.command("pause")
def pause(name: QueueName) -> None:
    """No worker claims from the queue until it is resumed; resumable jobs running in it checkpoint and wait."""
    open_queue().pause_queue_sync(name)
    typer.echo(f"paused queue {name!r}")


@queues_app.command("resume")
def resume(name: QueueName) -> None:
    """Workers claim from the queue again."""
    resumed = open_queue().resume_queue_sync(name)
    typer.echo(f"resumed queue {name!r}" if resumed else f"queue {name!r} was not paused")
