"""Jobs for the batch tests (JOBQUEUE_JOBS_MODULE=__tests__.support.batch_jobs in worker processes): a job that
squares a number (failing on demand, ending at a given instant so that the last jobs of a batch end together on
different workers), a callback that writes what it was given, and a workflow whose middle step fans out."""

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from main.base.jobs import BaseJob, NonRetryableError, job
from main.workflows.batches import BatchOutcome
from main.workflows.definition import Step, Workflow


def log(path: str, line: str) -> None:
    with Path(path).open("a") as out:
        out.write(line + "\n")


class Square(BaseModel):
    path: str
    n: int
    fail: bool = False
    end_at: float = 0.0  # a wall-clock instant: the job ends then (the last jobs of a batch end together)


class Squared(BaseModel):
    n: int
    square: int


@job(name="SquareJob", result=Squared, max_retries=0)
class SquareJob(BaseJob[Square]):
    async def perform(self, payload: Square) -> Squared:
        await anyio.sleep(max(0.0, payload.end_at - time.time()))
        if payload.fail and not Path(payload.path + f".fixed{payload.n}").exists():
            raise NonRetryableError(f"{payload.n} cannot be squared today")
        log(payload.path, f"square {payload.n} {self.context.job_id}")
        return Squared(n=payload.n, square=payload.n * payload.n)


class Settled(BaseModel):
    path: str
    label: str
    batch: BatchOutcome
    at: datetime | None = None  # not JSON as given: stored as the model dumps it


@job(name="BatchCallbackJob")
class BatchCallbackJob(BaseJob[Settled]):
    async def perform(self, payload: Settled) -> None:
        outcome = payload.batch
        log(payload.path, f"callback {payload.label} {outcome.id} {outcome.status} {outcome.total} {outcome.completed} "
                          f"{outcome.failed} {outcome.cancelled}")


class Numbers(BaseModel):
    path: str
    count: int
    fail: list[int] = []  # the numbers whose job fails


class Planned(BaseModel):
    numbers: list[int]


@job(name="PlanJob", result=Planned, max_retries=0)
class PlanJob(BaseJob[Numbers]):
    async def perform(self, payload: Numbers) -> Planned:
        return Planned(numbers=list(range(payload.count)))


class Total(BaseModel):
    path: str
    squares: list[int]


@job(name="TotalJob", max_retries=0)
class TotalJob(BaseJob[Total]):
    async def perform(self, payload: Total) -> int:
        log(payload.path, f"total {sum(payload.squares)}")
        return sum(payload.squares)


def squares(numbers: Numbers, results: dict[str, Any]) -> list[Square]:
    return [Square(path=numbers.path, n=n, fail=n in numbers.fail) for n in results["plan"].numbers]


def total(numbers: Numbers, results: dict[str, Any]) -> Total:
    return Total(path=numbers.path, squares=[item.square for item in results["square"]])


class SumOfSquares(Workflow[Numbers]):
    """plan -> square (fans out: one job per number planned) -> total (the sum of their results)."""

    namespace, name, version = "tests", "sum_of_squares", "1.0.0"
    steps = [
        Step(PlanJob, name="plan"),
        Step(SquareJob, name="square", after=["plan"], each=squares),
        Step(TotalJob, name="total", after=["square"], payload=total),
    ]


class SquaresAtOnce(Workflow[Numbers]):
    """A first step that fans out: its batch is written with the run."""

    namespace, name, version = "tests", "squares_at_once", "1.0.0"
    steps = [
        Step(SquareJob, name="square", each=lambda numbers, _: [Square(path=numbers.path, n=n)
                                                                 for n in range(numbers.count)]),
    ]


JOBS = [PlanJob, SquareJob, BatchCallbackJob, TotalJob]
WORKFLOWS = [SumOfSquares, SquaresAtOnce]
