"""What a running job can see about itself: which job, which attempt, a logger bound to both, and, for
resumable jobs, where its checkpoint lives and whether it has been asked to stop."""

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from anyio import CapacityLimiter, Event
from structlog.typing import FilteringBoundLogger

from main.base.jobs.interrupts import StopSignal
from main.log import get_logger

if TYPE_CHECKING:
    from main.base.jobs.continuation.sinks import CheckpointSink
    from main.db.engine import Database
    from main.events import EventBus, EventType


@dataclass(frozen=True)
class JobContext:
    job_type: str
    job_id: int | None = None  # None when run inline with perform_now
    attempt: int = 1
    max_retries: int = 0
    queue: str = "default"
    database: "Database | None" = None  # the queue's database (None inline: resumable jobs then use the queue's)
    checkpoints: "CheckpointSink | None" = None
    stop: StopSignal = field(default_factory=StopSignal)
    threads: CapacityLimiter | None = None  # where a sync `perform` runs (the worker's job threads)
    # Set when a sync `perform` that was cancelled has returned, or when the worker gives up waiting for it.
    thread_released: Event | None = None
    events: "EventBus | None" = None  # the queue's: where the job's own events (steps, checkpoints) go

    def wants(self, event_type: "EventType") -> bool:
        """Whether anyone listens to `event_type` (to skip computing what only the event would carry)."""
        return self.events is not None and self.events.wants(event_type)

    def emit(self, event_type: "EventType", /, **fields: Any) -> None:
        """Emit a lifecycle event about this job (its id, type, queue and attempt added)."""
        if self.events is not None:
            self.events.emit(event_type, job_id=self.job_id, job_type=self.job_type, queue=self.queue,
                             attempt=self.attempt, **fields)

    @cached_property
    def log(self) -> FilteringBoundLogger:
        """A logger bound to this job's id, type and attempt (built on first use: most jobs never log)."""
        return get_logger(job_id=self.job_id, job_type=self.job_type, attempt=self.attempt)
