"""What a running job can see about itself: which job, which attempt, a logger bound to both."""

from dataclasses import dataclass, field

from structlog.typing import FilteringBoundLogger

from main.log import get_logger


@dataclass(frozen=True)
class JobContext:
    job_type: str
    job_id: int | None = None  # None when run inline with perform_now
    attempt: int = 1
    max_retries: int = 0
    queue: str = "default"
    log: FilteringBoundLogger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "log", get_logger(job_id=self.job_id, job_type=self.job_type, attempt=self.attempt)
        )
