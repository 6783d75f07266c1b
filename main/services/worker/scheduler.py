"""Enqueues the slots of cron schedules. Every worker runs one; the database decides which of them enqueues a
slot (JobStore.enqueue_slot), so a slot runs once however many workers look. Between slots a look costs no
query: the last slot known to be done is kept here and the database is asked only when a newer one is due."""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import anyio
from sqlalchemy.exc import DBAPIError
from structlog.typing import FilteringBoundLogger

from main.base.jobs.schedule import Schedule
from main.clock import Clock
from main.db.engine import describe_database_error
from main.db.rows import NewJob
from main.db.store import JobStore
from main.errors import JobQueueError
from main.events import EventBus, EventType

# missed="skip": a slot is run only if a worker sees it within this long (else it passed while none ran).
SKIP_AFTER = timedelta(seconds=60)


class Scheduler:
    def __init__(self, store: JobStore, clock: Clock, schedules: Sequence[Schedule],
                 job_for: Callable[[Schedule, datetime], NewJob], events: EventBus, log: FilteringBoundLogger, *,
                 interval: float) -> None:
        self.store, self.clock, self.schedules, self.job_for, self.log = store, clock, schedules, job_for, log
        self.events = events
        self.interval = interval
        self._done: dict[str, datetime] = {}  # the last slot of each schedule known to be enqueued (or skipped)

    async def once(self) -> None:
        """One look: the worker takes it before its first claim, so that a burst runs the slots due at its start."""
        try:
            await self.look()
        except DBAPIError as exc:  # an outage: the next look tries again
            self.log.error("schedules_not_checked", error=describe_database_error(exc))
        except JobQueueError as exc:  # a slot's job refused (its options changed): the other parts go on
            self.log.error("schedule_failed", error=str(exc))

    async def run(self) -> None:
        """Look again every `interval` seconds until cancelled; returns at once if there are no schedules."""
        while self.schedules:
            await anyio.sleep(self.interval)
            await self.once()

    async def look(self) -> list[int]:
        """Enqueue every schedule's latest slot that no worker enqueued yet. Returns the new jobs' ids."""
        if not self.schedules:
            return []
        now = self.clock.now()
        due = {schedule.label: schedule.previous_slot(now) for schedule in self.schedules}
        if any(slot > self._done.get(name, datetime.min.replace(tzinfo=slot.tzinfo)) for name, slot in due.items()):
            self._done = await self.store.database.run(self.store.schedule_slots)
        enqueued = []
        for schedule in self.schedules:
            name, slot = schedule.label, due[schedule.label]
            done = self._done.get(name)
            if done is None:  # a new schedule: it starts with its next slot
                await self.store.database.run(self.store.start_schedule, name, slot)
            elif slot > done:
                skip = schedule.missed == "skip" and now - slot > SKIP_AFTER
                job = None if skip else self.job_for(schedule, slot)
                job_id = await self.store.database.run(self.store.enqueue_slot, name, slot, job, now)
                if job_id is not None:
                    enqueued.append(job_id)
                    self.events.emit(EventType.SCHEDULE_ENQUEUED, schedule=name, slot=slot.isoformat(), job_id=job_id,
                                     job_type=job.type if job else None)
                elif skip:
                    self.log.info("schedule_slot_skipped", schedule=name, slot=slot.isoformat(),
                                  reason="it passed while no worker ran (missed='skip')")
            self._done[name] = max(slot, done or slot)
        return enqueued
