"""Jobs used by the tests; JOBQUEUE_JOBS_MODULE=__tests__.support.jobs registers them in worker processes."""

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import BaseModel

from main.base.jobs import BaseJob, Limit, NonRetryableError, RateLimit, Unique, job
from main.base.jobs.continuation import IterationJob
from main.base.jobs.continuation.enumerators import Enumerator


class Nothing(BaseModel):
    n: int = 0


class Record(BaseModel):
    """Append a line to `path` each time the job runs, so tests can count executions."""

    path: str
    seconds: float = 0.0


class Sleep(BaseModel):
    seconds: float
    path: str | None = None  # if set, a line is appended when the job starts


class Fail(BaseModel):
    message: str = "boom"


@job(name="NoopJob")
class NoopJob(BaseJob[Nothing]):
    async def perform(self, payload: Nothing) -> int:
        return payload.n


def _append(path: str, line: str) -> None:
    with Path(path).open("a") as out:  # one short write with O_APPEND: lines from processes never interleave
        out.write(line + "\n")


@job(name="RecordJob", max_retries=0)
class RecordJob(BaseJob[Record]):
    async def perform(self, payload: Record) -> None:
        _append(payload.path, f"{self.context.job_id} {self.context.attempt}")
        if payload.seconds:
            await anyio.sleep(payload.seconds)


@job(name="SleepJob", max_retries=1, backoff="fixed", base_delay=0.01)
class SleepJob(BaseJob[Sleep]):
    async def perform(self, payload: Sleep) -> str:
        if payload.path:
            _append(payload.path, f"started {self.context.job_id} {self.context.attempt}")
        await anyio.sleep(payload.seconds)
        if payload.path:
            _append(payload.path, f"finished {self.context.job_id} {self.context.attempt}")
        return "slept"


@job(name="TimeoutJob", max_retries=1, backoff="fixed", base_delay=0.01, timeout=0.2)
class TimeoutJob(BaseJob[Sleep]):
    async def perform(self, payload: Sleep) -> None:
        await anyio.sleep(payload.seconds)


@job(name="FailingJob", max_retries=2, backoff="exponential", base_delay=10, max_delay=1000)
class FailingJob(BaseJob[Fail]):
    async def perform(self, payload: Fail) -> None:
        raise RuntimeError(payload.message)


@job(name="LinearFailingJob", max_retries=3, backoff="linear", base_delay=5)
class LinearFailingJob(BaseJob[Fail]):
    async def perform(self, payload: Fail) -> None:
        raise RuntimeError(payload.message)


@job(name="RejectingJob", max_retries=5)
class RejectingJob(BaseJob[Fail]):
    async def perform(self, payload: Fail) -> None:
        raise NonRetryableError(payload.message)


@job(name="SyncJob", timeout=5)
class SyncJob(BaseJob[Nothing]):
    def perform(self, payload: Nothing) -> int:  # a plain def: runs in a worker thread
        time.sleep(0.01)
        return payload.n * 2


@job(name="SyncSleepJob", max_retries=0)
class SyncSleepJob(BaseJob[Sleep]):
    def perform(self, payload: Sleep) -> None:  # holds a thread for the whole sleep
        time.sleep(payload.seconds)


@job(name="LoggingJob")
class LoggingJob(BaseJob[Nothing]):
    async def perform(self, payload: Nothing) -> None:
        structlog.get_logger("mailer").info("mail_sent", to="someone@example.com")  # a library's own logger


class FanOut(BaseModel):
    children: int
    hold: float = 0.0  # keep running this long after enqueueing


@job(name="FanOutJob")
class FanOutJob(BaseJob[FanOut]):
    def perform(self, payload: FanOut) -> list[int]:  # sync, in a worker thread: enqueues with the sync twin
        ids = NoopJob.perform_bulk_sync([{"n": n} for n in range(payload.children)])
        time.sleep(payload.hold)
        return ids


@job(name="PriorityJob", queue="reports")
class PriorityJob(BaseJob[Record]):
    async def perform(self, payload: Record) -> None:
        _append(payload.path, str(self.context.job_id))


class Anything(BaseModel):
    data: Any = None
    path: str | None = None  # if set, the data as the job received it is appended as JSON


@job(name="EchoJob", max_retries=0)
class EchoJob(BaseJob[Anything]):
    """Takes any JSON: for the tests that throw arbitrary payloads at enqueue."""

    async def perform(self, payload: Anything) -> None:
        if payload.path:
            _append(payload.path, json.dumps(payload.data))


@job(name="LoopBlockingJob", max_retries=3)
class LoopBlockingJob(BaseJob[Sleep]):
    """The mistake the watchdog is for: blocking code inside `async def perform` stalls the event loop."""

    async def perform(self, payload: Sleep) -> None:
        if payload.path:
            _append(payload.path, f"started {self.context.job_id} {self.context.attempt}")
        time.sleep(payload.seconds)


class Raise(BaseModel):
    exception: str  # a name in RAISABLE


class CustomBaseException(BaseException):
    pass


RAISABLE: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit,
    "CustomBaseException": CustomBaseException,
}


@job(name="RaiseJob", max_retries=3)
class RaiseJob(BaseJob[Raise]):
    async def perform(self, payload: Raise) -> None:
        raise RAISABLE[payload.exception]("raised by the job")


@job(name="SyncRaiseJob", max_retries=3)
class SyncRaiseJob(BaseJob[Raise]):
    def perform(self, payload: Raise) -> None:
        raise RAISABLE[payload.exception]("raised by the job")


class Sum(BaseModel):
    numbers: list[float]
    as_text: bool = False  # return what the result model cannot take


class Total(BaseModel):
    total: float
    count: int


@job(name="SumJob", result=Total, max_retries=2)
class SumJob(BaseJob[Sum]):
    async def perform(self, payload: Sum) -> Total | str:
        if payload.as_text:
            return "not a Total"
        return Total(total=sum(payload.numbers), count=len(payload.numbers))


class Account(BaseModel):
    account: str
    path: str | None = None  # if set, a line is appended when the job runs
    seconds: float = 0.0


@job(name="SyncAccountJob", unique=Unique(key=lambda payload: payload.account))
class SyncAccountJob(BaseJob[Account]):
    async def perform(self, payload: Account) -> str:
        if payload.path:
            _append(payload.path, f"{self.context.job_id} {payload.account}")
        await anyio.sleep(payload.seconds)
        return payload.account


@job(name="StrictAccountJob", unique=Unique(key=lambda payload: payload.account, on_duplicate="raise"))
class StrictAccountJob(BaseJob[Account]):
    async def perform(self, payload: Account) -> None:
        pass


@job(name="HourlyReportJob", unique=Unique(period=timedelta(hours=1)))
class HourlyReportJob(BaseJob[Account]):
    async def perform(self, payload: Account) -> None:
        pass


def _account(payload: Account) -> str:
    return payload.account


class _Interval(BaseJob[Account]):
    """Sleeps, then records "account start end" (wall-clock seconds): what the limit tests check for overlaps."""

    async def perform(self, payload: Account) -> None:
        started = time.time()
        await anyio.sleep(payload.seconds)
        if payload.path:
            _append(payload.path, f"{payload.account} {started} {time.time()} {self.context.job_id}")


@job(name="OnePerAccountJob", concurrency=Limit(max=1, key=_account), max_retries=0)
class OnePerAccountJob(_Interval):
    pass


@job(name="TwoPerAccountJob", concurrency=Limit(max=2, key=_account), max_retries=0)
class TwoPerAccountJob(_Interval):
    pass


@job(name="ThreePerMinuteJob", rate_limit="3/m", max_retries=0)
class ThreePerMinuteJob(_Interval):
    pass


@job(name="TwoPerMinutePerAccountJob", rate_limit=RateLimit(2, timedelta(minutes=1), key=_account), max_retries=0)
class TwoPerMinutePerAccountJob(_Interval):
    pass


class Countdown(BaseModel):
    count: int = 10
    item_delay: float = 0.2


@job(name="CountdownJob", max_retries=0)
class CountdownJob(IterationJob[Countdown]):
    """A resumable job that takes its time over each item: its progress can be watched."""

    def build_enumerator(self, payload: Countdown, cursor: int | None) -> Enumerator:
        return self.enumerate.items(range(payload.count), cursor=cursor)

    async def count(self, payload: Countdown) -> int:
        return payload.count

    async def each_iteration(self, item: int, payload: Countdown) -> None:
        await anyio.sleep(payload.item_delay)


JOBS = [NoopJob, RecordJob, SleepJob, TimeoutJob, FailingJob, LinearFailingJob, RejectingJob, SyncJob, FanOutJob,
        PriorityJob, SyncSleepJob, LoggingJob, EchoJob, RaiseJob, SyncRaiseJob, LoopBlockingJob, SumJob,
        SyncAccountJob, StrictAccountJob, HourlyReportJob, OnePerAccountJob, TwoPerAccountJob, ThreePerMinuteJob,
        TwoPerMinutePerAccountJob, CountdownJob]
