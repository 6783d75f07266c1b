"""The six demo jobs by their command-line names, and the pairs that do the same work in both styles."""

from typing import Any

from main.base.jobs.continuation import ContinuableJob
from main.errors import JobQueueError
from main.jobs import (
    BatchEmailIterationJob,
    BatchEmailJob,
    GenerateReportsIterationJob,
    GenerateReportsJob,
    ProcessOrdersIterationJob,
    ProcessOrdersJob,
)

DEMO_JOBS: dict[str, type[ContinuableJob[Any]]] = {
    "process-orders": ProcessOrdersJob,
    "process-orders-iteration": ProcessOrdersIterationJob,
    "generate-reports": GenerateReportsJob,
    "generate-reports-iteration": GenerateReportsIterationJob,
    "batch-email": BatchEmailJob,
    "batch-email-iteration": BatchEmailIterationJob,
}

# (what, step style, enumerator style)
PAIRS = [
    ("orders", ProcessOrdersJob, ProcessOrdersIterationJob),
    ("reports", GenerateReportsJob, GenerateReportsIterationJob),
    ("emails", BatchEmailJob, BatchEmailIterationJob),
]

DEMO_TYPES = [job_class.options.name for job_class in DEMO_JOBS.values()]


def demo_job(name: str) -> type[ContinuableJob[Any]]:
    """A demo job by command-line name (process-orders) or job name (ProcessOrdersJob)."""
    for alias, job_class in DEMO_JOBS.items():
        if name in (alias, job_class.options.name):
            return job_class
    raise JobQueueError(f"no demo job named {name!r}; choose one of: {', '.join(DEMO_JOBS)}")
