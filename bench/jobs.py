"""Jobs for the benchmarks (JOBQUEUE_JOBS_MODULE=bench.jobs for worker processes)."""

import time
from pathlib import Path

from pydantic import BaseModel

from main.base.jobs import BaseJob, job


class Empty(BaseModel):
    pass


class Stamp(BaseModel):
    path: str
    enqueued_at: float  # time.time() when enqueued


@job(name="BenchNoopJob")
class BenchNoopJob(BaseJob[Empty]):
    async def perform(self, payload: Empty) -> None:
        return None


@job(name="BenchStampJob")
class BenchStampJob(BaseJob[Stamp]):
    """Writes how long the job waited between enqueue and start."""

    async def perform(self, payload: Stamp) -> None:
        Path(payload.path).write_text(str(time.time() - payload.enqueued_at))


class Clock(BaseModel):
    path: str


@job(name="BenchClockJob")
class BenchClockJob(BaseJob[Clock]):
    """Appends the time it started to a file: the side-by-side benchmark's pickup probe (bench/compare)."""

    async def perform(self, payload: Clock) -> None:
        with open(payload.path, "a") as file:
            file.write(f"{time.time()}\n")


JOBS = [BenchNoopJob, BenchStampJob, BenchClockJob]
