"""The peers' no-op and stamp tasks, importable by their worker processes. Locations come from the
environment: BENCH_SQLITE (Huey's file), BENCH_PG_URL (procrastinate's database); RQ uses the local Redis."""

import os
import time

from huey import SqliteHuey
from procrastinate import App, PsycopgConnector

huey = SqliteHuey(filename=os.environ.get("BENCH_SQLITE", "/tmp/bench-huey.db"), results=False)
app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PG_URL", "postgresql:///bench")))


def stamp(path: str) -> None:
    with open(path, "a") as file:
        file.write(f"{time.time()}\n")


def noop() -> None:
    return None


huey_noop = huey.task()(noop)
huey_stamp = huey.task()(stamp)
procrastinate_noop = app.task(name="noop")(noop)
procrastinate_stamp = app.task(name="stamp")(stamp)
