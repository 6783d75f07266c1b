"""The @job decorator: attaches validated options to a BaseJob subclass.

Every option is checked when the class is defined, so a wrong option fails at import time with a message
naming the job and the option, not later inside a worker.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin

from pydantic import BaseModel

from main.base.jobs.backoff import BACKOFF_KINDS, Backoff
from main.base.jobs.limits import Limit, RateLimit
from main.base.jobs.routing import integer_problem, queue_problem
from main.base.jobs.schedule import schedule_problem
from main.base.jobs.unique import Unique
from main.errors import JobDefinitionError

if TYPE_CHECKING:
    from main.base.jobs.base_job import BaseJob

J = TypeVar("J", bound="type[BaseJob[Any]]")

# name -> "module.QualName" of the class that took it: two different classes may not share a name.
_names_taken: dict[str, str] = {}


@dataclass(frozen=True)
class JobOptions:
    name: str
    schema: type[BaseModel]
    max_retries: int = 3
    backoff: Backoff = Backoff()
    timeout: float | None = None
    queue: str = "default"
    priority: int = 0
    result: type[BaseModel] | None = None  # what perform returns, validated and stored as JSON
    unique: Unique | None = None
    cron: str | None = None  # enqueued at each slot by the workers, with the schema's default payload
    cron_timezone: str = "UTC"
    concurrency: Limit | None = None
    rate_limit: RateLimit | None = None


def job(
    *,
    name: str | None = None,
    schema: type[BaseModel] | None = None,
    max_retries: int = 3,
    backoff: str = "exponential",
    base_delay: float = 2.0,
    max_delay: float = 3600.0,
    jitter: float = 0.0,
    timeout: float | None = None,
    queue: str = "default",
    priority: int = 0,
    result: type[BaseModel] | None = None,
    unique: Unique | None = None,
    cron: str | None = None,
    cron_timezone: str = "UTC",
    concurrency: Limit | None = None,
    rate_limit: str | RateLimit | None = None,
) -> Callable[[J], J]:
    """Declare a job. `schema` may be omitted when the class subclasses ``BaseJob[SomeModel]``.

    max_retries: retries after the first attempt (3 means at most 4 runs). timeout: seconds per attempt,
    None for no limit. priority: higher runs first among due jobs of the same queue. result: the model of what
    perform returns (stored with the job, read by queue.result()). unique: see Unique. cron: run at each slot of
    this cron expression (in `cron_timezone`), with the payload the schema's defaults make. concurrency: at most
    Limit.max running at once (per key). rate_limit: at most so many starts per window, "100/m" or a RateLimit.
    """

    raw_options = dict(
        schema=schema, max_retries=max_retries, backoff=backoff, base_delay=base_delay, max_delay=max_delay,
        jitter=jitter, timeout=timeout, queue=queue, priority=priority, result=result, unique=unique, cron=cron,
        cron_timezone=cron_timezone, concurrency=concurrency, rate_limit=rate_limit,
    )

    def decorate(cls: J) -> J:
        from main.base.jobs.base_job import BaseJob

        label = str(name or getattr(cls, "__name__", repr(cls)))
        if not (inspect.isclass(cls) and issubclass(cls, BaseJob)):
            raise JobDefinitionError(f"@job({label!r}) decorates {cls!r}, which is not a BaseJob subclass")
        problem = _first_problem(cls, label, raw_options)
        if problem:
            raise JobDefinitionError(f"job {label!r}: {problem}")
        _claim_name(label, cls)
        cls.options = JobOptions(
            name=label,
            schema=schema or _schema_from_generic(cls),  # type: ignore[arg-type]
            max_retries=max_retries,
            backoff=Backoff(backoff, float(base_delay), float(max_delay), float(jitter)),  # type: ignore[arg-type]
            timeout=None if timeout is None else float(timeout),
            queue=queue,
            priority=priority,
            result=result,
            unique=unique,
            cron=cron,
            cron_timezone=cron_timezone,
            concurrency=concurrency,
            rate_limit=RateLimit.parse(rate_limit) if isinstance(rate_limit, str) else rate_limit,
        )
        return cls

    return decorate


def _first_problem(cls: type, label: str, options: dict[str, Any]) -> str | None:
    """The first thing wrong with the options, as a sentence naming the option; None if all is well."""
    def is_number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    inferred = _schema_from_generic(cls)
    schema, max_retries, backoff = options["schema"], options["max_retries"], options["backoff"]
    base_delay, max_delay, jitter = options["base_delay"], options["max_delay"], options["jitter"]
    timeout, queue, priority = options["timeout"], options["queue"], options["priority"]
    if not label or not isinstance(label, str) or len(label) > 200:
        return "option 'name' must be a non-empty string of at most 200 characters"
    if schema is None and inferred is None:
        return "option 'schema' is missing: pass schema=YourModel or subclass BaseJob[YourModel]"
    if schema is not None and not (inspect.isclass(schema) and issubclass(schema, BaseModel)):
        return f"option 'schema' must be a pydantic BaseModel subclass, got {schema!r}"
    if schema is not None and inferred is not None and schema is not inferred:
        return f"option 'schema' is {schema.__name__} but the class declares BaseJob[{inferred.__name__}]"  # type: ignore[union-attr]
    if problem := integer_problem("option 'max_retries'", max_retries, minimum=0):
        return problem
    if backoff not in BACKOFF_KINDS:
        return f"option 'backoff' must be one of {', '.join(BACKOFF_KINDS)}; got {backoff!r}"
    for option, value in (("base_delay", base_delay), ("max_delay", max_delay)):
        if not is_number(value) or value <= 0:  # type: ignore[operator]
            return f"option {option!r} must be a number of seconds > 0, got {value!r}"
    if base_delay > max_delay:  # type: ignore[operator]
        return f"option 'base_delay' ({base_delay}) must not exceed 'max_delay' ({max_delay})"
    if not is_number(jitter) or jitter < 0:  # type: ignore[operator]
        return f"option 'jitter' must be a number of seconds >= 0, got {jitter!r}"
    if timeout is not None and (not is_number(timeout) or timeout <= 0):  # type: ignore[operator]
        return f"option 'timeout' must be a number of seconds > 0 or None, got {timeout!r}"
    if problem := queue_problem("option 'queue'", queue) or integer_problem("option 'priority'", priority):
        return problem
    result, unique, cron = options["result"], options["unique"], options["cron"]
    if result is not None and not (inspect.isclass(result) and issubclass(result, BaseModel)):
        return f"option 'result' must be a pydantic BaseModel subclass or None, got {result!r:.80}"
    if unique is not None and not isinstance(unique, Unique):
        return f"option 'unique' must be a Unique(...), got {unique!r:.80}"
    if unique is not None and (problem := unique.problem()):
        return f"option 'unique': {problem}"
    if cron is not None and (problem := schedule_problem(cron, options["cron_timezone"])):
        return f"option 'cron': {problem}"
    concurrency, rate_limit = options["concurrency"], options["rate_limit"]
    if concurrency is not None and not isinstance(concurrency, Limit):
        return f"option 'concurrency' must be a Limit(max=..., key=...), got {concurrency!r:.80}"
    if concurrency is not None and (problem := concurrency.problem()):
        return f"option 'concurrency': {problem}"
    if isinstance(rate_limit, str):
        try:
            rate_limit = RateLimit.parse(rate_limit)
        except ValueError as exc:
            return f"option 'rate_limit': {exc}"
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        return f"option 'rate_limit' must be a rate such as '100/m' or a RateLimit(...), got {rate_limit!r:.80}"
    if rate_limit is not None and (problem := rate_limit.problem()):
        return f"option 'rate_limit': {problem}"
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        return f"the class does not define {', '.join(missing)} (required by its base class)"
    return None


def _schema_from_generic(cls: type) -> type[BaseModel] | None:
    """The model in ``class X(BaseJob[Model])`` (or any generic job base), if there is one."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            for arg in get_args(base) if get_origin(base) else ():
                if inspect.isclass(arg) and issubclass(arg, BaseModel):
                    return arg
    return None


def _claim_name(label: str, cls: type) -> None:
    owner = f"{cls.__module__}.{cls.__qualname__}"
    taken_by = _names_taken.setdefault(label, owner)
    if taken_by != owner:
        raise JobDefinitionError(
            f"job name {label!r} is already used by {taken_by}; give {owner} another name with @job(name=...)"
        )
