"""Periodic jobs: a cron expression (croniter: five fields, or six with seconds) in a time zone, and the job to
enqueue at each of its slots. Declared with `@job(cron=...)` or in the SCHEDULES list of the jobs module; every
worker looks, and the database lets exactly one of them enqueue each slot (main/services/worker/scheduler.py)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import BaseModel

from main.errors import JobDefinitionError

if TYPE_CHECKING:
    from main.base.jobs.base_job import BaseJob

MISSED = ("latest", "skip")


@dataclass(frozen=True)
class Schedule:
    """`missed`: what to do with slots that passed while no worker ran: "latest" enqueues the most recent of
    them once; "skip" enqueues none (only slots reached while a worker runs). A new schedule starts with the
    next slot. `name` identifies it in the database; it defaults to the job's name."""

    job_class: "type[BaseJob[Any]]"
    cron: str
    payload: BaseModel | Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    timezone: str = "UTC"
    missed: Literal["latest", "skip"] = "latest"

    def __post_init__(self) -> None:
        if problem := schedule_problem(self.cron, self.timezone, self.missed):
            raise JobDefinitionError(f"schedule {self.label!r}: {problem}")

    @property
    def label(self) -> str:
        options = getattr(self.job_class, "__dict__", {}).get("options")
        return self.name or (options.name if options else repr(self.job_class))

    def previous_slot(self, now: datetime) -> datetime:
        """The latest slot at or before `now`, in UTC."""
        just_after = now.astimezone(ZoneInfo(self.timezone)).replace(microsecond=0) + timedelta(seconds=1)
        return croniter(self.cron, just_after).get_prev(datetime).astimezone(UTC)  # type: ignore[no-any-return]

    def next_slot(self, now: datetime) -> datetime:
        """The first slot after `now`, in UTC."""
        return croniter(self.cron, now.astimezone(ZoneInfo(self.timezone))).get_next(datetime).astimezone(UTC)  # type: ignore[no-any-return]


def schedule_problem(cron: str, timezone: str, missed: str = "latest") -> str | None:
    """What is wrong with a schedule's options, as a sentence; None if all is well."""
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        return (f"{cron!r:.80} is not a cron expression: give five fields (minute hour day month weekday), e.g. "
                "'0 2 * * *', or six with seconds last")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return f"unknown time zone {timezone!r:.80}: give an IANA name such as 'UTC' or 'Europe/Berlin'"
    if missed not in MISSED:
        return f"missed={missed!r:.80} must be one of {', '.join(MISSED)}"
    return None
