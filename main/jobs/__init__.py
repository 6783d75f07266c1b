"""The application's jobs. A job runs under `jobqueue worker` only if it is in JOBS: explicit, no discovery."""

from main.jobs.batch_email_job import BatchEmailIterationJob, BatchEmailJob
from main.jobs.checkout_workflow import CHECKOUT_JOBS, ProcessOrder
from main.jobs.daily_cleanup_job import DailyCleanupJob
from main.jobs.email_job import EmailJob
from main.jobs.generate_reports_job import (
    GenerateReportsIterationJob,
    GenerateReportsJob,
)
from main.jobs.process_orders_job import ProcessOrdersIterationJob, ProcessOrdersJob

JOBS = [
    EmailJob,
    DailyCleanupJob,
    # Resumable demo jobs: the same business logic in the step style and the enumerator style.
    ProcessOrdersJob,
    ProcessOrdersIterationJob,
    GenerateReportsJob,
    GenerateReportsIterationJob,
    BatchEmailJob,
    BatchEmailIterationJob,
    # The checkout workflow's steps.
    *CHECKOUT_JOBS,
]
WORKFLOWS = [ProcessOrder]

__all__ = ["JOBS", "WORKFLOWS", "BatchEmailIterationJob", "BatchEmailJob", "DailyCleanupJob", "EmailJob",
           "GenerateReportsIterationJob", "GenerateReportsJob", "ProcessOrder", "ProcessOrdersIterationJob",
           "ProcessOrdersJob"]
