"""What the store can record about one run of a job: the retry policy's answer, the completer's input."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    COMPLETE = "complete"  # done
    RETRY = "retry"  # pending again at run_at, the attempt counted
    FAIL = "fail"  # out of retries, or an error no retry can fix
    CANCEL = "cancel"  # cancel_job() stopped it
    RELEASE = "release"  # handed back untouched (shutdown, a resumable job's pause): the attempt not counted
    ABANDON = "abandon"  # the lease was lost: another worker owns the job; write nothing


@dataclass(frozen=True, slots=True)
class Decision:
    job_id: int
    kind: Kind
    run_at: datetime | None = None  # RETRY
    error: str | None = None  # RETRY, FAIL
    traceback: str | None = None
    result: Any = None  # COMPLETE: what perform returned, as JSON-ready values (None: nothing to store)

    def wakes_workers(self, now: datetime) -> bool:
        """Whether writing this makes a job due now, so idle workers elsewhere should look."""
        return self.kind is Kind.RELEASE or (self.kind is Kind.RETRY and self.run_at is not None
                                              and self.run_at <= now)
