"""The database handle: one engine per queue, sessions that keep their objects usable after commit."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlmodel import Session

from main.db.dialects import Dialect, dialect_for


class Database:
    """An engine, its dialect, and a transaction helper. Cheap to build; connects lazily."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.dialect: Dialect = dialect_for(database_url)
        self.engine: Engine = self.dialect.create_engine()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        with (
            self.dialect.one_writer_at_a_time(),
            Session(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
