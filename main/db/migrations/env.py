"""Alembic's entry point for the jobqueue tables. It runs on the connection main/db/schema.py hands it, inside
that connection's transaction (which holds the schema lock), and never on an application's tables."""

from alembic import context
from sqlmodel import SQLModel

from main.db import entities
from main.db.schema import VERSION_TABLE, model_table

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table instead
    # A comparison with the models (autogenerate, the schema test) sees the jobqueue tables only:
    include_object=lambda _object, name, kind, _reflected, _compare_to: kind != "table" or model_table(name),
)
assert entities  # the tables are defined (and in the metadata) once their module is imported
with context.begin_transaction():
    context.run_migrations()
