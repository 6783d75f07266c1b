"""One answer per finished run: complete, retry at T, fail, cancel, release or abandon.

Asked once per run by the worker (and by nothing else): the outcome of the run and the job's own options
decide; the completer writes the answer.
"""

from datetime import datetime, timedelta

from main.base.jobs.backoff import Backoff
from main.db.outcomes import Decision, Kind
from main.db.rows import ClaimedJob
from main.services.runner import (
    Completed,
    Failed,
    Interrupted,
    Outcome,
    Paused,
    StopReason,
)


def decide(job: ClaimedJob, outcome: Outcome, backoff: Backoff | None, now: datetime) -> Decision:
    """`backoff` is the job class's (None when the type is not registered: its run failed for good)."""
    match outcome:
        case Completed():
            return Decision(job.id, Kind.COMPLETE, result=outcome.result)
        case Failed(retryable=True) if backoff is not None and job.attempts <= job.max_retries:
            run_at = now + timedelta(seconds=backoff.delay(job.attempts))
            return Decision(job.id, Kind.RETRY, run_at, outcome.error, outcome.traceback)
        case Failed():
            return Decision(job.id, Kind.FAIL, error=outcome.error, traceback=outcome.traceback)
        case Interrupted(reason=StopReason.CANCELLED):
            return Decision(job.id, Kind.CANCEL)
        case Interrupted(reason=StopReason.SHUTDOWN) | Paused():
            return Decision(job.id, Kind.RELEASE)
        case Interrupted(reason=StopReason.LEASE_LOST):
            return Decision(job.id, Kind.ABANDON)
    raise AssertionError(f"unhandled outcome {outcome!r}")
