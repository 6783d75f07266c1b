"""`jobqueue db ...`: the jobqueue tables' schema (Alembic revisions in a version table of their own)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from main.cli import AsJson, app
from main.cli.output import print_json
from main.db import schema
from main.db.engine import Database
from main.errors import JobRequestError
from main.log import configure_logging
from main.settings import Settings

db_app = typer.Typer(help="Create, upgrade and inspect the jobqueue tables (a deploy step).", no_args_is_help=True)
app.add_typer(db_app, name="db")

Revision = Annotated[str, typer.Argument(metavar="REV", help="A revision (see `jobqueue db current`), head or base")]


@contextmanager
def _database() -> Iterator[Database]:
    settings = Settings.load()
    configure_logging(settings.log_format, settings.log_level)
    database = Database(settings.database_url, settings.pool_size, settings.transaction_pooler)
    try:
        yield database
    finally:
        database.dispose()


def _report(verb: str, before: str | None, after: str | None, as_json: bool) -> None:
    if as_json:
        print_json({"before": before, "after": after, "head": schema.head()})
    elif before == after:
        typer.echo(f"already at {after or 'base (no jobqueue tables)'}; nothing to {verb}")
    else:
        typer.echo(f"{verb}d the jobqueue tables: {before or 'base'} -> {after or 'base'}")


@db_app.command("upgrade")
def upgrade(revision: Annotated[str, typer.Argument(metavar="[REV]", help="Target revision")] = "head",
            as_json: AsJson = False) -> None:
    """Migrate the jobqueue tables to REV (default: this jobqueue's head). Safe to run on every deploy."""
    with _database() as database:
        _report("upgrade", *schema.upgrade(database, revision), as_json)


@db_app.command("downgrade")
def downgrade(
    revision: Revision,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a downgrade to base: it drops every job")] = False,
    as_json: AsJson = False,
) -> None:
    """Migrate the jobqueue tables back to REV, to run an older jobqueue."""
    if revision == "base" and not yes:
        raise JobRequestError("downgrading to base drops the jobqueue tables with every job in them; add --yes if "
                              "that is what you want")
    with _database() as database:
        _report("downgrade", *schema.downgrade(database, revision), as_json)


@db_app.command("current")
def current(as_json: AsJson = False) -> None:
    """The revision of the jobqueue tables, and whether this jobqueue can run on them."""
    with _database() as database:
        found = schema.current(database)
    head = schema.head()
    if found.legacy_version is not None:
        verdict = "from a release before Alembic: run `jobqueue db upgrade`"
    elif found.revision is None:
        verdict = "no jobqueue tables yet: created on first use, or by `jobqueue db upgrade`"
    elif found.revision == head:
        verdict = "up to date"
    elif found.revision in schema.revisions():
        verdict = "older than this jobqueue: run `jobqueue db upgrade`"
    else:
        verdict = "newer than this jobqueue: upgrade jobqueue"
    if as_json:
        print_json({"revision": found.revision, "legacy_version": found.legacy_version, "head": head,
                    "verdict": verdict})
    else:
        shown = found.revision or (f"legacy v{found.legacy_version}" if found.legacy_version else "base")
        typer.echo(f"{shown} (head {head}): {verdict}")
