"""The job-author API: ``from main.base.jobs import BaseJob, job``."""

from main.base.jobs.backoff import Backoff
from main.base.jobs.base_job import BaseJob, JobRequest, validate_payload
from main.base.jobs.context import JobContext
from main.base.jobs.decorators.job import JobOptions, job
from main.base.jobs.limits import Limit, RateLimit
from main.base.jobs.schedule import Schedule
from main.base.jobs.unique import Unique
from main.errors import NonRetryableError

__all__ = ["Backoff", "BaseJob", "JobContext", "JobOptions", "JobRequest", "Limit", "NonRetryableError", "RateLimit",
           "Schedule", "Unique", "job", "validate_payload"]
