"""What lifecycle events, their log lines and the Prometheus metrics cost per job.

    python -m bench.bench_events [--jobs 5000] [--rounds 3] [--database-url ...]

1. One `emit` alone, by who listens: nobody (the type is not routed), the log lines (written to /dev/null),
   the metrics, a subscriber (the event goes to its mailbox; a task delivers it).
2. One worker processing no-op jobs (SQLite by default, concurrency 10), the median of `--rounds` runs per
   set-up: log level warning and nothing else (no lifecycle event of a successful job is routed), info logs,
   metrics, metrics and a subscriber on every event. The cost per job is the difference from the first.
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator

import anyio
from prometheus_client import CollectorRegistry

from bench.jobs import JOBS, BenchNoopJob
from main.events import Event, EventType
from main.log import configure_logging
from main.metrics.instruments import attach_metrics
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

SETUPS: dict[str, tuple[str, bool, bool]] = {  # name -> (log level, metrics, a subscriber on "*")
    "nothing listens (log level warning)": ("warning", False, False),
    "info log lines": ("info", False, False),
    "metrics (log level warning)": ("warning", True, False),
    "metrics + a subscriber on '*'": ("warning", True, True),
    "info logs + metrics + subscriber": ("info", True, True),
}


async def _count(event: Event) -> None:
    """The cheapest async subscriber: what delivery itself costs."""


@contextlib.contextmanager
def stderr_discarded() -> Iterator[None]:
    """Log lines are written (formatted, to a file descriptor), then thrown away, as into a busy log file."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def build(url: str, level: str, metrics: bool, subscriber: bool, concurrency: int = 10) -> JobQueue:
    settings = Settings.load(database_url=url, concurrency=concurrency, log_level=level, log_format="json")
    configure_logging(settings.log_format, settings.log_level)
    queue = set_job_queue(JobQueue(settings, jobs=JOBS))
    if metrics:
        attach_metrics(queue.events, CollectorRegistry())
    if subscriber:
        queue.subscribe("*", _count)
    return queue


def emit_cost(queue: JobQueue, calls: int) -> float:
    """Nanoseconds per emit of job.completed, delivered (a subscriber's mailbox is emptied by its task)."""

    async def measure() -> float:
        async with queue.events.delivering():
            started = time.perf_counter()
            for n in range(calls):
                queue.events.emit(EventType.JOB_COMPLETED, job_id=n, job_type="BenchNoopJob", queue="default",
                                  attempt=1, duration=0.0001)
            elapsed = time.perf_counter() - started
            return elapsed / calls * 1e9

    return anyio.run(measure)


def process(queue: JobQueue, jobs: int) -> float:
    queue.cleanup_sync(older_than=None)
    BenchNoopJob.perform_bulk_sync([{}] * jobs)
    started = time.perf_counter()
    anyio.run(lambda: queue.run(burst=True))
    return jobs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--emits", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, stderr_discarded():
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        emitters: dict[str, Callable[[], JobQueue]] = {
            "nobody": lambda: build(url, "warning", False, False),
            "log line (info, JSON)": lambda: build(url, "info", False, False),
            "metrics": lambda: build(url, "warning", True, False),
            "a subscriber": lambda: build(url, "warning", False, True),
        }
        emits = {name: emit_cost(make(), args.emits) for name, make in emitters.items()}
        rates: dict[str, list[float]] = {name: [] for name in SETUPS}
        for _ in range(args.rounds):  # interleaved: a drift of the machine's speed hits every set-up alike
            for name, (level, metrics, subscriber) in SETUPS.items():
                queue = build(url, level, metrics, subscriber)
                queue.store.ensure_schema()
                rates[name].append(process(queue, args.jobs))
                queue.close()
    print(f"database: {url.split('@')[-1].split('?')[0]}   jobs: {args.jobs}   rounds: {args.rounds}\n")
    print(f"{'one emit of job.completed, heard by':<40}{'ns':>10}")
    for name, cost in emits.items():
        print(f"{name:<40}{cost:>10.0f}")
    print(f"\n{'processing no-op jobs, one worker':<40}{'jobs/s':>10}{'us/job':>10}{'+us/job':>10}")
    base = None
    for name, found in rates.items():
        rate = statistics.median(found)
        per_job = 1e6 / rate
        base = per_job if base is None else base
        print(f"{name:<40}{rate:>10.0f}{per_job:>10.1f}{per_job - base:>+10.1f}")


if __name__ == "__main__":
    main()
