"""The store's hot statements alone, without a worker: what one claim and one outcome batch cost.

    python -m bench.bench_store [--jobs 20000] [--batch 100] [--database-url sqlite:///bench.db | postgresql://...]

Prints jobs/s for a bulk enqueue and for enqueues one by one, then claims `--batch` jobs at a time and records
them completed until none is left: jobs/s and milliseconds per claim and per outcome batch. To compare two
versions of the code, run it in a checkout of each (git worktree) against a fresh database each time.
"""

import argparse
import tempfile
import time
from datetime import timedelta

from bench.jobs import JOBS, BenchNoopJob
from main.db.outcomes import Decision, Kind
from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database-url", default=f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    args = parser.parse_args()
    configure_logging("json", "error")
    queue = set_job_queue(JobQueue(Settings.load(database_url=args.database_url), jobs=JOBS))
    store, one_by_one = queue.store, max(args.jobs // 10, 1)

    started = time.perf_counter()
    BenchNoopJob.perform_bulk_sync([{}] * args.jobs)
    bulk = args.jobs / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(one_by_one):
        BenchNoopJob.perform_later_sync({})
    single = one_by_one / (time.perf_counter() - started)

    claimed, claiming, recording, batches = 0, 0.0, 0.0, 0
    while True:
        now = queue.clock.now()
        started = time.perf_counter()
        jobs = store.claim("bench", (), args.batch, now, now + timedelta(seconds=60))
        claiming += time.perf_counter() - started
        if not jobs:
            break
        started = time.perf_counter()
        store.record("bench", [Decision(job.id, Kind.COMPLETE) for job in jobs], queue.clock.now())
        recording += time.perf_counter() - started
        claimed, batches = claimed + len(jobs), batches + 1
    print(f"{queue.database.dialect.name}: bulk enqueue {bulk:,.0f} jobs/s, one by one {single:,.0f} jobs/s; "
          f"claim {claimed / claiming:,.0f} jobs/s ({claiming * 1000 / batches:.2f} ms per {args.batch}), "
          f"record {claimed / recording:,.0f} jobs/s ({recording * 1000 / batches:.2f} ms per {args.batch})")
    queue.close()


if __name__ == "__main__":
    main()
