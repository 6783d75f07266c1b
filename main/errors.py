"""Every error jobqueue raises on purpose. Each message says what is wrong and what to do about it."""


class JobQueueError(Exception):
    """Base class: the CLI prints these as one line instead of a traceback."""


class SettingsError(JobQueueError):
    """A JOBQUEUE_* variable (or Settings argument) has a bad value."""


class JobDefinitionError(JobQueueError):
    """A job class or its @job options are wrong; raised at import time."""


class JobRegistrationError(JobQueueError):
    """A job class is not registered with the queue, or two classes claim one name."""


class PayloadValidationError(JobQueueError):
    """A payload does not match the job's schema; nothing was written."""


class JobRequestError(JobQueueError):
    """An enqueue argument (queue name, priority) is unusable; nothing was written."""


class SchedulingError(JobQueueError):
    """A run time is unusable, e.g. a naive datetime."""


class JobNotFoundError(JobQueueError):
    """No job with that id exists (it may have been cleaned up)."""


class InvalidJobStateError(JobQueueError):
    """The job exists but its status does not allow the operation."""


class DatabaseUnusableError(JobQueueError):
    """The database refused in a way that waiting will not fix (read-only, permission, authentication): the
    worker stops instead of retrying forever."""


class SchemaVersionError(JobQueueError):
    """The database's jobqueue tables are at a revision this jobqueue cannot work with or migrate to (a newer
    jobqueue made them; an unknown revision was asked for)."""


class SchemaMigrationNeededError(SchemaVersionError):
    """The database's jobqueue tables are older than this jobqueue: run `jobqueue db upgrade`."""


class JobTimeoutError(JobQueueError):
    """A job ran longer than its timeout and was cancelled."""


class ResultError(JobQueueError):
    """What `perform` returned cannot be stored as the job's result (not JSON, or not its declared result model).
    The job fails without a retry: its work is done, running it again would repeat it."""


class JobFailedError(JobQueueError):
    """`queue.result()` of a job that failed: the message is its stored error."""

    def __init__(self, job_id: int, error: str | None) -> None:
        super().__init__(f"job {job_id} failed: {error or 'no error was recorded'}")
        self.job_id, self.error = job_id, error


class JobCancelledError(JobQueueError):
    """`queue.result()` of a job that was cancelled: it has no result and never will."""


class ResultTimeoutError(JobQueueError, TimeoutError):
    """`queue.result(timeout=...)` gave up: the job had not finished. It goes on; ask again later."""


class DuplicateJobError(JobQueueError):
    """An enqueue of a unique job (`Unique(on_duplicate="raise")`) found one with the same key: nothing was
    written. `existing_id` is that job's id."""

    def __init__(self, job_type: str, unique_key: str, existing_id: int) -> None:
        super().__init__(f"job {job_type!r} with unique key {unique_key!r} exists already (job {existing_id}); "
                         "nothing was enqueued")
        self.job_type, self.unique_key, self.existing_id = job_type, unique_key, existing_id


class EventSubscriptionError(JobQueueError):
    """queue.subscribe() was given something that is not an event, a pattern matching one, or a handler."""


class UnknownJobTypeError(JobQueueError):
    """A stored job names a type this worker has not registered."""


class NonRetryableError(Exception):
    """Raise from `perform` to fail the job at once, without using its retries."""


class MaxResumptionsExceededError(NonRetryableError):
    """A resumable job was interrupted more often than its max_resumptions allows."""


class ContinuationError(JobQueueError, NonRetryableError):
    """A resumable job is built wrongly for what it was given (an enumerator, a cursor): it would fail the same
    way on every retry, so it fails at once. The message names the job and the step."""


class CursorError(ContinuationError):
    """A cursor cannot be stored so that it comes back exactly as it was given."""


class CheckpointWriteError(JobQueueError):
    """A checkpoint (with the writes of its items) failed to commit earlier in this run; the run stops and the
    job resumes from the last committed checkpoint. Retryable: the failure may be transient."""


class EnumeratorError(ContinuationError):
    """An enumerator cannot be iterated as asked (a select with its own ORDER BY or LIMIT, not pairs, ...)."""


class LeaseLostError(JobQueueError):
    """This worker no longer owns the job (its lease expired and another worker took it over)."""


class JobInterrupted(BaseException):
    """Control flow, not an error: a resumable job saved its checkpoint and stops so that any worker resumes it.

    A BaseException, like anyio's cancellation, so that ``except Exception`` in job code does not swallow it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
