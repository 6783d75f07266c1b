"""Checkpoint overhead per item, for each checkpoint policy, over N items (default 10,000).

    python -m bench.bench_checkpoints [--items 10000] [--database-url sqlite:///... | postgresql://...]

A resumable job iterates N no-op items (each one also queues a one-row database write, committed with the
checkpoint, as a real job would). Printed per policy: total time, time per item, checkpoints written, and the
overhead per item: the time above writing the same rows in one plain transaction.

Then the case the default policy is made for: items that take 1 ms each (N/10 of them), run by a job with the
default policy, against the same work in a plain loop: the overhead in percent.
"""

import argparse
import tempfile
import time
from typing import Any

import anyio
from pydantic import BaseModel
from sqlalchemy import delete

from main.base.jobs import job
from main.base.jobs.continuation import CheckpointPolicy, IterationJob
from main.base.jobs.continuation.enumerators import Enumerator
from main.base.jobs.continuation.testing import run_job
from main.db.entities import ProcessingLog
from main.demo.seed import create_tables
from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings


class Count(BaseModel):
    items: int
    write: bool = True


class _Loop(IterationJob[Count]):
    def build_enumerator(self, payload: Count, cursor: int | None) -> Enumerator:
        return self.enumerate.items(range(payload.items), cursor=cursor)

    async def each_iteration(self, item: int, payload: Count) -> None:
        if payload.write:
            self.atomically(lambda session: session.add(ProcessingLog(
                job_type=self.options.name, kind="bench", item_key=str(item), processed_at=self.payload_time)))


@job(name="BenchEveryItemJob")
class EveryItem(_Loop):
    checkpoint_policy = CheckpointPolicy.every_item()


@job(name="BenchEvery100Job")
class Every100(_Loop):
    checkpoint_policy = CheckpointPolicy.every(100)


@job(name="BenchEverySecondJob")
class EverySecond(_Loop):
    checkpoint_policy = CheckpointPolicy.every_interval(1.0)


class Work(BaseModel):
    items: int
    item_ms: float


@job(name="BenchDefaultPolicyJob")
class DefaultPolicy(IterationJob[Work]):
    """1 ms of work per item (the default checkpoint_policy)."""

    def build_enumerator(self, payload: Work, cursor: int | None) -> Enumerator:
        return self.enumerate.items(range(payload.items), cursor=cursor)

    async def each_iteration(self, item: int, payload: Work) -> None:
        time.sleep(payload.item_ms / 1000)


POLICIES: list[tuple[str, Any]] = [("every item", EveryItem), ("every 100 items", Every100),
                                   ("every second", EverySecond)]


async def measure(queue: JobQueue, job_class: Any, items: int) -> tuple[float, int]:
    from datetime import UTC, datetime

    job_class.payload_time = datetime.now(UTC)
    job_id = await job_class.perform_later({"items": items})
    started = time.perf_counter()
    row = await run_job(job_id)
    seconds = time.perf_counter() - started
    with queue.database.transaction() as session:
        session.execute(delete(ProcessingLog))
    return seconds, row.checkpoint["saves"]  # type: ignore[index]


def baseline(queue: JobQueue, items: int) -> float:
    """The same rows written in one transaction, with no job, no cursor and no checkpoint."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    started = time.perf_counter()
    with queue.database.transaction() as session:
        for item in range(items):
            session.add(ProcessingLog(job_type="baseline", kind="bench", item_key=str(item), processed_at=now))
    seconds = time.perf_counter() - started
    with queue.database.transaction() as session:
        session.execute(delete(ProcessingLog))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--database-url", default=None,
                        help="default: a fresh SQLite file; a PostgreSQL database given here gets the queue's and "
                             "the demo's tables (use a scratch database)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        settings = Settings.load(database_url=url, log_level="warning")
        configure_logging(settings.log_format, settings.log_level)
        queue = set_job_queue(JobQueue(settings, jobs=[*(job_class for _, job_class in POLICIES), DefaultPolicy]))
        queue.store.ensure_schema()
        create_tables(queue.database)
        loop_only = baseline(queue, args.items)
        print(f"database: {url.split('@')[-1]}   items: {args.items:,}   "
              f"the same {args.items:,} rows written without a job: {loop_only:.2f}s")
        print(f"{'policy':<18}{'total':>10}{'per item':>12}{'checkpoints':>13}{'overhead/item':>16}")
        for label, job_class in POLICIES:
            seconds, saves = anyio.run(measure, queue, job_class, args.items)
            per_item = seconds / args.items * 1e6
            overhead = (seconds - loop_only) / args.items * 1e6
            shown = f"{overhead:.0f}us" if overhead >= 1 else "~0 (noise)"
            print(f"{label:<18}{seconds:>9.2f}s{per_item:>10.0f}us{saves:>13,}{shown:>16}")
        anyio.run(default_policy_overhead, queue, max(args.items // 10, 1))
        queue.close()


async def default_policy_overhead(queue: JobQueue, items: int, item_ms: float = 1.0) -> None:
    started = time.perf_counter()
    for _ in range(items):
        time.sleep(item_ms / 1000)
    bare = time.perf_counter() - started
    job_id = await DefaultPolicy.perform_later({"items": items, "item_ms": item_ms})
    started = time.perf_counter()
    row = await run_job(job_id)
    seconds = time.perf_counter() - started
    print(f"default policy ({DefaultPolicy.checkpoint_policy}), {items:,} items of {item_ms:g} ms: "
          f"{seconds:.2f}s in the job, {bare:.2f}s in a plain loop, overhead {(seconds / bare - 1) * 100:.1f}% "
          f"({row.checkpoint['saves']} checkpoints)")  # type: ignore[index]


if __name__ == "__main__":
    main()
