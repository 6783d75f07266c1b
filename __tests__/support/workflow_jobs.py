"""A checkout workflow for the workflow tests (JOBQUEUE_JOBS_MODULE=__tests__.support.workflow_jobs in worker
processes): validate -> charge -> (inventory, create_order) -> confirm. Each step writes when it starts and ends."""

import time
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from main.base.jobs import BaseJob, NonRetryableError, job
from main.base.jobs.continuation import CheckpointPolicy, Enumerator, IterationJob
from main.workflows.definition import Step, Workflow


class Checkout(BaseModel):
    path: str  # the log of starts and ends
    seconds: float = 0.0  # each step's duration
    broken: str | None = None  # a file: while it exists, the inventory step fails (the "bug" a retry follows)
    flaky: bool = False  # the charge fails its first attempt (a gateway timeout), then succeeds


class Work(BaseModel):
    step: str
    path: str
    seconds: float = 0.0
    broken: str | None = None
    flaky: bool = False
    seen: dict[str, Any] = {}  # the results of the steps it waited for


def log(path: str, line: str) -> None:
    with Path(path).open("a") as out:
        out.write(line + "\n")


@job(name="StepJob", max_retries=2, backoff="fixed", base_delay=0.01)
class StepJob(BaseJob[Work]):
    async def perform(self, payload: Work) -> dict[str, Any]:
        log(payload.path, f"start {payload.step} {time.time():.6f} {self.context.job_id}")
        await anyio.sleep(payload.seconds)
        if payload.flaky and self.context.attempt == 1:
            raise TimeoutError(f"{payload.step}: the gateway did not answer")
        if payload.broken and Path(payload.broken).exists():
            raise NonRetryableError(f"{payload.step}: out of stock")
        log(payload.path, f"end {payload.step} {time.time():.6f} {self.context.job_id}")
        return {"step": payload.step, "saw": sorted(payload.seen)}


def work(step: str, **only: bool) -> Any:
    def build(order: Checkout, results: dict[str, Any]) -> Work:
        return Work(step=step, path=order.path, seconds=order.seconds, seen=results,
                    broken=order.broken if only.get("breakable") else None,
                    flaky=order.flaky if only.get("flaky") else False)

    return build


class CheckoutWorkflow(Workflow[Checkout]):
    namespace, name, version = "shop", "checkout", "1.0.0"
    steps = [
        Step(StepJob, name="validate", payload=work("validate")),
        Step(StepJob, name="charge", after=["validate"], payload=work("charge", flaky=True)),
        Step(StepJob, name="inventory", after=["charge"], payload=work("inventory", breakable=True)),
        Step(StepJob, name="create_order", after=["charge"], payload=work("create_order")),
        Step(StepJob, name="confirm", after=["inventory", "create_order"], payload=work("confirm")),
    ]


@job(name="ResumableStepJob")
class ResumableStepJob(IterationJob[Work]):
    """A resumable step: eight items, interrupted every 50 ms (max_run_time) and resumed from its checkpoint."""

    max_run_time = 0.05
    checkpoint_policy = CheckpointPolicy.every_item()

    def build_enumerator(self, payload: Work, cursor: int | None) -> Enumerator:
        return self.enumerate.items(range(8), cursor=cursor)

    async def each_iteration(self, item: int, payload: Work) -> None:
        await anyio.sleep(0.02)
        log(payload.path + ".items", f"{item}")
        if item == 7:
            log(payload.path, f"end {payload.step} {time.time():.6f} {self.context.job_id}")


class ResumableWorkflow(Workflow[Checkout]):
    """crunch (resumable, resumed several times) -> confirm."""

    namespace, name, version = "shop", "resumable", "1.0.0"
    steps = [
        Step(ResumableStepJob, name="crunch", payload=work("crunch")),
        Step(StepJob, name="confirm", after=["crunch"], payload=work("confirm")),
    ]


JOBS = [StepJob, ResumableStepJob]
WORKFLOWS = [CheckoutWorkflow, ResumableWorkflow]
