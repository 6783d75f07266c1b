"""DailyCleanupJob: delete finished jobs older than N days, every day at 02:00 UTC (a cron schedule: each day's
slot runs once, however many workers run)."""

from datetime import timedelta

from pydantic import BaseModel, Field

from main.base.jobs import BaseJob, job
from main.services.job_queue import get_job_queue


class DailyCleanup(BaseModel):
    retention_days: float = Field(30, ge=0)


@job(name="DailyCleanupJob", max_retries=2, backoff="fixed", base_delay=60, timeout=600, queue="maintenance",
     cron="0 2 * * *")
class DailyCleanupJob(BaseJob[DailyCleanup]):
    async def perform(self, payload: DailyCleanup) -> int:
        return await get_job_queue().cleanup(older_than=timedelta(days=payload.retention_days))
