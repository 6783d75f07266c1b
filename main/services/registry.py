"""The registry: the job classes this process runs and enqueues, by name, and the cron schedules of them; both
explicit (the JOBS and SCHEDULES lists of JOBQUEUE_JOBS_MODULE, or `register` / `add_schedule`), nothing found
by magic."""

import importlib
from types import ModuleType
from typing import Any

from main.base.jobs import BaseJob, Schedule
from main.base.jobs.base_job import payload_document
from main.errors import JobRegistrationError, PayloadValidationError, SettingsError


class Registry:
    def __init__(self, jobs_module: str) -> None:
        self.jobs_module = jobs_module  # named in error messages: where a job should be listed
        self._classes: dict[str, type[BaseJob[Any]]] = {}
        self.schedules: dict[str, Schedule] = {}

    def register(self, job_class: type[BaseJob[Any]]) -> None:
        """Make a job class runnable and enqueueable (and schedule it, if it has a cron). Twice is harmless."""
        options = getattr(job_class, "__dict__", {}).get("options")
        if options is None:
            raise JobRegistrationError(f"cannot register {job_class!r}: it is not a BaseJob decorated with @job(...)")
        existing = self._classes.setdefault(options.name, job_class)
        if existing is not job_class:
            raise JobRegistrationError(
                f"cannot register {job_class.__qualname__} as {options.name!r}: {existing.__qualname__} has that name"
            )
        if options.cron is not None and options.name not in self.schedules:
            self.add_schedule(Schedule(job_class, options.cron, timezone=options.cron_timezone))

    def add_schedule(self, schedule: Schedule) -> None:
        """Have the workers enqueue `schedule`'s job at each of its slots. Its job must be registered and its payload
        valid; two schedules may not share a name."""
        if not isinstance(schedule, Schedule):
            raise JobRegistrationError(f"SCHEDULES holds {schedule!r:.80}, which is not a Schedule(...)")
        name = schedule.label
        if self._classes.get(schedule.job_class._options().name) is not schedule.job_class:
            raise JobRegistrationError(f"schedule {name!r}: its job {schedule.job_class.__qualname__} is not "
                                       f"registered (add it to the JOBS list in {self.jobs_module})")
        if name in self.schedules and self.schedules[name] != schedule:
            raise JobRegistrationError(f"two schedules are named {name!r}; give one another name with "
                                       "Schedule(..., name=...)")
        try:
            payload_document(schedule.job_class, schedule.payload)
        except PayloadValidationError as exc:
            raise JobRegistrationError(f"schedule {name!r}: {exc} (give the payload with Schedule(..., "
                                       "payload={...}))") from None
        self.schedules[name] = schedule

    def get(self, name: str) -> type[BaseJob[Any]] | None:
        return self._classes.get(name)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def require(self, name: str) -> type[BaseJob[Any]]:
        """The class for a job name; an unknown name is an error listing the known ones."""
        if name not in self._classes:
            raise JobRegistrationError(f"no job named {name!r} is registered (registered: "
                                       f"{', '.join(self.names()) or 'none'})")
        return self._classes[name]


def load_jobs_module(module_name: str) -> ModuleType:
    """The module named by JOBQUEUE_JOBS_MODULE, checked to have its explicit JOBS list (SCHEDULES is optional)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SettingsError(f"JOBQUEUE_JOBS_MODULE: cannot import {module_name!r} ({exc})") from None
        raise
    if not isinstance(getattr(module, "JOBS", None), list | tuple):
        raise SettingsError(
            f"JOBQUEUE_JOBS_MODULE: module {module_name!r} has no JOBS list; define JOBS = [YourJob, ...] in it"
        )
    module_schedules(module)
    return module


def module_schedules(module: ModuleType | None) -> list[Schedule]:
    """The jobs module's schedules: its SCHEDULES list (or `schedules`, as the issue that added them spelt it)."""
    if module is None:
        return []
    found = {name: getattr(module, name) for name in ("SCHEDULES", "schedules") if hasattr(module, name)}
    if len(found) > 1:
        raise SettingsError(f"JOBQUEUE_JOBS_MODULE: module {module.__name__!r} has both SCHEDULES and schedules; "
                            "keep one list")
    schedules: object = next(iter(found.values()), [])
    if not isinstance(schedules, list | tuple):
        raise SettingsError(f"JOBQUEUE_JOBS_MODULE: {next(iter(found))} in module {module.__name__!r} must be a list "
                            "of Schedule(...)")
    return list(schedules)
