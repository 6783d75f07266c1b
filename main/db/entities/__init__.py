from main.db.entities.job import TERMINAL_STATUSES, Job, JobStatus
from main.db.entities.schema_version import SchemaVersion

__all__ = ["TERMINAL_STATUSES", "Job", "JobStatus", "SchemaVersion"]
