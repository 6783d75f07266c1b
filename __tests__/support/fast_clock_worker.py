"""`jobqueue worker` whose clock runs FAST_CLOCK_SPEED times faster than this machine's from FAST_CLOCK_ORIGIN:
worker processes given the same two agree on the time, and a cron schedule's minutes pass in seconds. Run as
`python -m __tests__.support.fast_clock_worker` with the JOBQUEUE_* variables of the worker; SIGTERM stops it."""

import os
from datetime import UTC, datetime

import anyio

from main.log import configure_logging
from main.services.job_queue import JobQueue, set_job_queue
from main.settings import Settings


class FastClock:
    def __init__(self, origin: datetime, speed: float) -> None:
        self.origin, self.speed = origin, speed

    def now(self) -> datetime:
        return self.origin + (datetime.now(UTC) - self.origin) * self.speed


if __name__ == "__main__":
    settings = Settings.load()
    configure_logging(settings.log_format, settings.log_level)
    clock = FastClock(datetime.fromisoformat(os.environ["FAST_CLOCK_ORIGIN"]), float(os.environ["FAST_CLOCK_SPEED"]))
    anyio.run(set_job_queue(JobQueue(settings, clock=clock)).serve)
