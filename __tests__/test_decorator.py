"""@job: options, defaults, name uniqueness, and import-time errors naming the job and the option."""

import pytest
from pydantic import BaseModel

from main.base.jobs import Backoff, BaseJob, job
from main.errors import JobDefinitionError


class Ping(BaseModel):
    host: str


def test_options_are_attached_with_defaults() -> None:
    @job(schema=Ping)
    class PingJob(BaseJob[Ping]):
        async def perform(self, payload: Ping) -> None: ...

    options = PingJob.options
    assert options.name == "PingJob"  # default: the class name
    assert options.schema is Ping
    assert (options.max_retries, options.timeout, options.queue, options.priority) == (3, None, "default", 0)
    assert options.backoff == Backoff("exponential", 2.0, 3600.0, 0.0)


def test_schema_is_taken_from_the_generic_parameter() -> None:
    @job(name="InferredSchemaJob", max_retries=1, backoff="linear", base_delay=3, timeout=9, queue="q1", priority=7)
    class InferredSchemaJob(BaseJob[Ping]):
        async def perform(self, payload: Ping) -> None: ...

    assert InferredSchemaJob.options.schema is Ping
    assert InferredSchemaJob.options.backoff.kind == "linear"
    assert (InferredSchemaJob.options.timeout, InferredSchemaJob.options.queue) == (9.0, "q1")


def test_a_second_class_with_a_taken_name_is_an_error() -> None:
    @job(name="UniqueNameJob")
    class First(BaseJob[Ping]):
        async def perform(self, payload: Ping) -> None: ...

    with pytest.raises(JobDefinitionError, match="'UniqueNameJob' is already used by .*First"):

        @job(name="UniqueNameJob")
        class Second(BaseJob[Ping]):
            async def perform(self, payload: Ping) -> None: ...


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"max_retries": -1}, "option 'max_retries' must be an integer from 0 to 2147483647, got -1"),
        ({"max_retries": 1.5}, "option 'max_retries'"),
        ({"backoff": "quadratic"}, "option 'backoff' must be one of exponential, linear, fixed; got 'quadratic'"),
        ({"base_delay": 0}, "option 'base_delay' must be a number of seconds > 0"),
        ({"max_delay": "10"}, "option 'max_delay'"),
        ({"base_delay": 10, "max_delay": 5}, "option 'base_delay' (10) must not exceed 'max_delay' (5)"),
        ({"jitter": -1}, "option 'jitter'"),
        ({"timeout": 0}, "option 'timeout' must be a number of seconds > 0 or None"),
        ({"queue": "has space"}, "option 'queue'"),
        ({"priority": "high"}, "option 'priority' must be an integer"),
        ({"schema": dict}, "option 'schema' must be a pydantic BaseModel subclass"),
    ],
)
def test_a_wrong_option_fails_at_definition_naming_job_and_option(options: dict, expected: str) -> None:
    with pytest.raises(JobDefinitionError) as error:

        @job(name="BadOptionsJob", **options)
        class BadOptionsJob(BaseJob[Ping]):
            async def perform(self, payload: Ping) -> None: ...

    assert str(error.value).startswith("job 'BadOptionsJob': ")
    assert expected in str(error.value)


def test_missing_schema_and_missing_perform_are_errors() -> None:
    with pytest.raises(JobDefinitionError, match="option 'schema' is missing"):

        @job(name="NoSchemaJob")
        class NoSchemaJob(BaseJob):  # type: ignore[type-arg]
            async def perform(self, payload: object) -> None: ...

    with pytest.raises(JobDefinitionError, match="does not define perform"):

        @job(name="NoPerformJob")
        class NoPerformJob(BaseJob[Ping]):
            pass


def test_decorating_something_else_is_an_error() -> None:
    with pytest.raises(JobDefinitionError, match="not a BaseJob subclass"):
        job(name="NotAJob")(dict)  # type: ignore[arg-type]


def test_conflicting_schema_and_generic_parameter() -> None:
    class Other(BaseModel):
        x: int

    with pytest.raises(JobDefinitionError, match="option 'schema' is Other but the class declares BaseJob\\[Ping\\]"):

        @job(name="ConflictJob", schema=Other)
        class ConflictJob(BaseJob[Ping]):
            async def perform(self, payload: Ping) -> None: ...
