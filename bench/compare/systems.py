"""One adapter per system under test: how to empty it, enqueue one or many no-op jobs, enqueue a clock
probe, start a worker process, and count what is done. Each talks to its own storage through its own API."""

import os
import subprocess
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select

from main.db.entities import Job

JOBS = Job.__table__  # type: ignore[attr-defined]

BIN = Path(sys.executable).parent
SERVERS = {"postgresql": "postgres", "redis": "redis-server"}  # engine: its server's process name


def empty_table(pg_url: str, statement: str, table: str) -> None:
    """Run `statement` (a DELETE), then VACUUM `table`: each round starts from a table without the last round's dead
    rows, as autovacuum would leave it (servers with autovacuum off, like this machine's, would otherwise make
    every round slower than the one before, for every system alike)."""
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]
        connection.execute(f"VACUUM {table}")  # type: ignore[arg-type]


class System(ABC):
    name: str
    engine: str

    @property
    def server(self) -> str:
        """The name of its storage server's processes on this machine, if it has a server (their CPU is counted)."""
        return SERVERS.get(self.engine, "")

    def __init__(self, workdir: Path, pg_url: str) -> None:
        self.workdir, self.pg_url = workdir, pg_url

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def enqueue_one(self, count: int) -> None:
        """`count` no-op jobs, one call (and one commit) each."""

    def enqueue_bulk(self, count: int) -> None:
        """`count` no-op jobs in one call; NotImplementedError where the system has no bulk API."""
        raise NotImplementedError

    @abstractmethod
    def enqueue_clock(self, path: str) -> None:
        """A job that appends the time it starts to `path`."""

    @abstractmethod
    def worker_command(self) -> list[str]: ...

    @abstractmethod
    def remaining(self) -> int:
        """Jobs not yet taken by a worker (or not yet done, where the system can tell)."""

    records_times = False  # whether `span()` can tell when the jobs started and ended

    def span(self) -> tuple[float, float]:
        """When the first job of the round started and the last one ended (seconds, one clock), from the system's
        own records."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "BENCH_SQLITE": str(self.workdir / "huey.db"), "BENCH_PG_URL": self.pg_url,
                "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.worker_command(), env=self.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)


class Jobqueue(System):
    """jobqueue: `jobqueue worker` with concurrency 100 (async slots in one process)."""

    concurrency = 100

    def __init__(self, workdir: Path, pg_url: str, engine: str) -> None:
        super().__init__(workdir, pg_url)
        self.engine, self.name = engine, "jobqueue"
        self.url = f"sqlite:///{workdir / 'jobqueue.db'}" if engine == "sqlite" else pg_url
        os.environ.update(JOBQUEUE_DATABASE_URL=self.url, JOBQUEUE_JOBS_MODULE="bench.jobs",
                          JOBQUEUE_LOG_LEVEL="warning")
        from bench.jobs import BenchClockJob, BenchNoopJob
        from main.services.job_queue import get_job_queue, reset_job_queue

        reset_job_queue()
        self.queue = get_job_queue()
        self.noop, self.clock = BenchNoopJob, BenchClockJob

    def reset(self) -> None:
        self.queue.store.ensure_schema()
        if self.engine == "sqlite":
            self.queue.store.delete_jobs_of_types(self.queue.get_available_job_types())
        else:
            empty_table(self.url, "DELETE FROM jobs", "jobs")

    def enqueue_one(self, count: int) -> None:
        for _ in range(count):
            self.noop.perform_later_sync({})

    def enqueue_bulk(self, count: int) -> None:
        self.noop.perform_bulk_sync([{}] * count)

    def enqueue_clock(self, path: str) -> None:
        self.clock.perform_later_sync({"path": path})

    def worker_command(self) -> list[str]:
        return [str(BIN / "jobqueue"), "worker", "--concurrency", str(self.concurrency)]

    def env(self) -> dict[str, str]:
        return {**super().env(), "JOBQUEUE_DATABASE_URL": self.url}

    def remaining(self) -> int:
        # One count over the table, no grouping: it is asked every 10 ms while the workers run, on the same cores.
        with self.queue.database.engine.connect() as connection:
            return int(connection.exec_driver_sql(
                "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')").scalar_one())


    records_times = True

    def span(self) -> tuple[float, float]:
        with self.queue.database.engine.connect() as connection:
            first, last = connection.execute(select(func.min(JOBS.c.started_at), func.max(JOBS.c.finished_at))).one()
        return first.timestamp(), last.timestamp()


class Huey(System):
    """Huey with SqliteStorage (SqliteHuey), its consumer with one thread (-w 1 -k thread), default polling."""

    name, engine = "huey", "sqlite"

    def __init__(self, workdir: Path, pg_url: str) -> None:
        super().__init__(workdir, pg_url)
        from bench.compare import peer_apps

        self.apps = peer_apps

    def reset(self) -> None:
        self.apps.huey.flush()

    def enqueue_one(self, count: int) -> None:
        for _ in range(count):
            self.apps.huey_noop()

    def enqueue_clock(self, path: str) -> None:
        self.apps.huey_stamp(path)

    def worker_command(self) -> list[str]:
        return [str(BIN / "huey_consumer"), "bench.compare.peer_apps.huey", "-w", "1", "-k", "thread", "-q"]

    def remaining(self) -> int:
        return self.apps.huey.pending_count()


class Procrastinate(System):
    """procrastinate on the same PostgreSQL server, its worker with concurrency 10."""

    name, engine = "procrastinate", "postgresql"

    def __init__(self, workdir: Path, pg_url: str) -> None:
        super().__init__(workdir, pg_url)
        from bench.compare import peer_apps

        self.apps = peer_apps
        self.apps.app.open()
        with psycopg.connect(pg_url, autocommit=True) as connection:
            exists = connection.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]  # type: ignore[index]
        if exists is None:
            self.apps.app.schema_manager.apply_schema()

    def reset(self) -> None:
        empty_table(self.pg_url, "DELETE FROM procrastinate_jobs", "procrastinate_jobs")

    def enqueue_one(self, count: int) -> None:
        for _ in range(count):
            self.apps.procrastinate_noop.defer()

    def enqueue_bulk(self, count: int) -> None:
        self.apps.procrastinate_noop.batch_defer(*[{}] * count)

    def enqueue_clock(self, path: str) -> None:
        self.apps.procrastinate_stamp.defer(path=path)

    def worker_command(self) -> list[str]:
        return [str(BIN / "procrastinate"), "--app", "bench.compare.peer_apps.app", "worker", "--concurrency", "10"]

    def remaining(self) -> int:
        with psycopg.connect(self.pg_url) as connection:
            row = connection.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()
        return int(row[0])  # type: ignore[index]


    records_times = True

    def span(self) -> tuple[float, float]:
        with psycopg.connect(self.pg_url) as connection:
            first, last = connection.execute(
                "SELECT min(at) FILTER (WHERE type = 'started'), max(at) FILTER (WHERE type = 'succeeded') "
                "FROM procrastinate_events").fetchone()  # type: ignore[misc]
        return first.timestamp(), last.timestamp()


class Rq(System):
    """RQ on the local Redis, SimpleWorker (no fork per job), the popular non-SQL reference."""

    name, engine = "rq", "redis"

    def __init__(self, workdir: Path, pg_url: str) -> None:
        super().__init__(workdir, pg_url)
        from redis import Redis
        from rq import Queue

        from bench.compare import peer_apps

        self.redis = Redis()
        self.queue, self.apps = Queue("bench", connection=self.redis), peer_apps

    def reset(self) -> None:
        self.queue.empty()

    def enqueue_one(self, count: int) -> None:
        for _ in range(count):
            self.queue.enqueue(self.apps.noop)

    def enqueue_bulk(self, count: int) -> None:
        self.queue.enqueue_many([self.queue.prepare_data(self.apps.noop) for _ in range(count)])

    def enqueue_clock(self, path: str) -> None:
        self.queue.enqueue(self.apps.stamp, path)

    def worker_command(self) -> list[str]:
        return [str(BIN / "rq"), "worker", "bench", "--worker-class", "rq.worker.SimpleWorker", "--quiet"]

    def remaining(self) -> int:
        return self.queue.count + self.queue.started_job_registry.count


def version(package: str) -> Any:
    from importlib.metadata import version as installed

    return installed(package)
