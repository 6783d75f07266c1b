"""Throughput and pickup latency of the core queue.

    python -m bench.bench_queue [--jobs 2000] [--database-url sqlite:///bench.db | postgresql://...]

Prints: enqueue jobs/s one by one and in bulk; processing jobs/s with one worker; pickup latency of a single
job into an idle worker, in-process (woken by the enqueue) and from another process (SQLite: the poll
interval; PostgreSQL: LISTEN/NOTIFY).
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from bench.jobs import JOBS, BenchNoopJob, BenchStampJob
from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=5.0, help="the idle workers' poll interval")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        settings = Settings.load(database_url=url, concurrency=args.concurrency, poll_interval=args.poll_interval,
                                 log_level="warning")
        configure_logging(settings.log_format, settings.log_level)
        queue = set_job_queue(JobQueue(settings, jobs=JOBS))
        queue.store.ensure_schema()
        queue.cleanup_sync(older_than=None)
        print(f"database: {url.split('@')[-1]}   jobs: {args.jobs}   concurrency: {args.concurrency}")

        started = time.perf_counter()
        for _ in range(args.jobs):
            BenchNoopJob.perform_later_sync({})
        report("enqueue one by one", args.jobs, time.perf_counter() - started)

        started = time.perf_counter()
        BenchNoopJob.perform_bulk_sync([{}] * args.jobs)
        report("enqueue in bulk (one transaction)", args.jobs, time.perf_counter() - started)

        started = time.perf_counter()
        anyio.run(lambda: queue.run(burst=True))
        report("process with one worker", 2 * args.jobs, time.perf_counter() - started)

        poll = f"poll {args.poll_interval:g} s"
        in_process = anyio.run(in_process_latency, queue, Path(tmp), args.latency_samples)
        print_latency(f"pickup latency, same process (idle worker, {poll})", in_process)
        other = cross_process_latency(queue, url, Path(tmp), args.latency_samples, args.poll_interval)
        print_latency(f"pickup latency, worker in another process ({poll})", other)
        queue.close()


def report(label: str, n: int, seconds: float) -> None:
    print(f"{label:<48} {n / seconds:>10,.0f} jobs/s   ({n} in {seconds:.2f} s)")


def print_latency(label: str, samples: list[float]) -> None:
    ms = sorted(sample * 1000 for sample in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{label:<58} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms")


async def in_process_latency(queue: JobQueue, tmp: Path, samples: int) -> list[float]:
    results = []
    async with anyio.create_task_group() as tg:
        await queue.start(tg)
        for n in range(samples):
            await anyio.sleep(0.05)  # let the worker go idle
            stamp = tmp / f"in-{n}"
            await BenchStampJob.perform_later({"path": str(stamp), "enqueued_at": time.time()})
            results.append(await read_stamp(stamp))
        queue.stop()
    return results


def cross_process_latency(queue: JobQueue, url: str, tmp: Path, samples: int, poll_interval: float) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBQUEUE_DATABASE_URL": url, "JOBQUEUE_JOBS_MODULE": "bench.jobs",
           "JOBQUEUE_POLL_INTERVAL": str(poll_interval), "JOBQUEUE_LOG_LEVEL": "warning"}
    worker = subprocess.Popen([sys.executable, "-m", "main.cli", "worker"], cwd=ROOT, env=env)
    try:
        time.sleep(2.0)  # start-up
        results = []
        for n in range(samples):
            time.sleep(0.3)  # let the worker go idle: its last job's wake-up tick is over
            stamp = tmp / f"out-{n}"
            BenchStampJob.perform_later_sync({"path": str(stamp), "enqueued_at": time.time()})
            results.append(anyio.run(read_stamp, stamp))
        return results
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


async def read_stamp(stamp: Path) -> float:
    with anyio.fail_after(30):
        while not stamp.exists() or not stamp.read_text():
            await anyio.sleep(0.001)
    return float(stamp.read_text())


if __name__ == "__main__":
    main()
