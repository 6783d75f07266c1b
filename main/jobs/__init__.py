"""The application's jobs. A job runs under `jobqueue worker` only if it is in JOBS: explicit, no discovery."""

from main.jobs.daily_cleanup_job import DailyCleanupJob
from main.jobs.email_job import EmailJob

JOBS = [
    EmailJob,
    DailyCleanupJob,
]

__all__ = ["JOBS", "DailyCleanupJob", "EmailJob"]
