"""What a claim costs while many jobs wait for later (reminders, delayed emails): the claim's index is ordered by
priority first, so a claim that finds fewer due jobs than it asks for reads past every job not yet due.

    python -m bench.bench_backlog [--backlog 10000,100000,500000] [--database-url sqlite:///bench.db | postgresql://...]

Enqueues jobs due tomorrow until each backlog size is reached, and prints the time of a claim that finds nothing due
(the best of 5): an idle worker's claim, and each claim of a worker whose queue is drained faster than it fills.
"""

import argparse
import tempfile
import time
from datetime import timedelta

from bench.jobs import JOBS, BenchNoopJob
from main.base.jobs import JobRequest
from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings

CHUNK = 50_000  # jobs per bulk enqueue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", default="0,10000,100000,500000", help="comma-separated sizes, growing")
    parser.add_argument("--batch", type=int, default=100, help="jobs a claim asks for")
    parser.add_argument("--database-url", default=f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    args = parser.parse_args()
    configure_logging("json", "error")
    queue = set_job_queue(JobQueue(Settings.load(database_url=args.database_url), jobs=JOBS))
    store, waiting = queue.store, 0
    for size in (int(size) for size in args.backlog.split(",")):
        while waiting < size:
            count = min(CHUNK, size - waiting)
            queue.enqueue_many_sync([JobRequest(BenchNoopJob, {}, delay=timedelta(days=1)) for _ in range(count)])
            waiting += count
        timings = []
        for _ in range(5):
            now = queue.clock.now()
            started = time.perf_counter()
            claimed = store.claim("bench", (), args.batch, now, now + timedelta(seconds=60))
            timings.append(time.perf_counter() - started)
            assert not claimed, "a job due tomorrow was claimed"
        print(f"{queue.database.dialect.name}: {waiting:>9,} jobs due tomorrow, none due now: a claim takes "
              f"{min(timings) * 1000:.2f} ms", flush=True)
    queue.close()


if __name__ == "__main__":
    main()
