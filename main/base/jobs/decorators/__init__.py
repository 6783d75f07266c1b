from main.base.jobs.decorators.job import JobOptions, job

__all__ = ["JobOptions", "job"]
