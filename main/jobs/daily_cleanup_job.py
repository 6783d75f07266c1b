"""DailyCleanupJob: delete finished jobs older than N days, then schedule itself for tomorrow 02:00 UTC."""

from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel, Field

from main.base.jobs import BaseJob, job
from main.services.job_queue import get_job_queue


class DailyCleanup(BaseModel):
    retention_days: float = Field(30, ge=0)
    reschedule: bool = True  # enqueue the next run for 02:00 UTC tomorrow


def next_2am_utc(after: datetime) -> datetime:
    return datetime.combine(after.astimezone(UTC).date() + timedelta(days=1), time(2, 0), tzinfo=UTC)


@job(name="DailyCleanupJob", max_retries=2, backoff="fixed", base_delay=60, timeout=600, queue="maintenance")
class DailyCleanupJob(BaseJob[DailyCleanup]):
    async def perform(self, payload: DailyCleanup) -> int:
        queue = get_job_queue()
        deleted = await queue.cleanup(older_than=timedelta(days=payload.retention_days))
        self.context.log.info("daily_cleanup_done", deleted=deleted, retention_days=payload.retention_days)
        if payload.reschedule:
            await DailyCleanupJob.perform_at(next_2am_utc(queue.clock.now()), payload)
        return deleted
