"""BaseJob: the Rails-like API of a job class.

Async code awaits ``perform_later`` / ``perform_at`` / ``perform_in`` / ``perform_bulk`` / ``perform_now``.
Sync code (Flask, Django views, scripts, a plain ``def perform``) calls the ``*_sync`` twins, which block
the calling thread until the row is committed (or the inline run is over). The twins refuse to run on a
thread that is running an event loop, where blocking would stall every other task.
"""

import asyncio
import contextlib
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, Union

import anyio
import anyio.from_thread
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from main.base.jobs.context import JobContext
from main.base.jobs.decorators.job import JobOptions
from main.errors import (
    JobDefinitionError,
    JobQueueError,
    JobTimeoutError,
    PayloadValidationError,
    ResultError,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.orm import Session

    from main.services.job_queue import JobQueue

P = TypeVar("P", bound=BaseModel)
Payload = BaseModel | Mapping[str, Any]
# An application's open transaction that an enqueue may join (`session=`): its jobs commit or roll back with it.
# The async kinds only with the async methods (perform_later...), which await their connection.
AppTransaction = Union["Session", "Connection", "AsyncSession", "AsyncConnection"]


@dataclass(frozen=True)
class JobRequest:
    """One job to enqueue: for ``JobQueue.enqueue_many`` when a transaction holds jobs of several types."""

    job_class: "type[BaseJob[Any]]"
    payload: Payload
    run_at: datetime | None = None  # timezone-aware; None = now (or after `delay`)
    delay: float | timedelta | None = None
    queue: str | None = None  # None = the job's @job(queue=...)
    priority: int | None = None  # None = the job's @job(priority=...)
    unique_key: str | None = None  # None = the job's @job(unique=...) key, if it has one


class BaseJob(ABC, Generic[P]):
    """Subclass as ``BaseJob[YourPayloadModel]``, decorate with ``@job(...)``, implement ``perform``."""

    options: ClassVar[JobOptions]
    _async_perform: ClassVar[bool] = True

    def __init__(self, context: JobContext) -> None:
        self.context = context

    @abstractmethod
    async def perform(self, payload: P) -> Any:
        """Do the work. May also be a plain ``def``: it then runs in a worker thread."""

    # -- enqueue (async) -------------------------------------------------------------------------------

    @classmethod
    async def perform_later(cls, payload: P | Mapping[str, Any], *, queue: str | None = None,
                            priority: int | None = None, session: AppTransaction | None = None,
                            unique_key: str | None = None) -> int:
        """Validate and enqueue to run as soon as a worker is free. Returns the job id. With `session`, the job
        is written in that transaction and exists only if it commits. With `unique_key` (or @job(unique=...)),
        an enqueue while a job of this type with that key is pending or running returns that job's id instead."""
        requests = [JobRequest(cls, payload, queue=queue, priority=priority, unique_key=unique_key)]
        return (await _queue().enqueue_many(requests, session=session))[0]

    @classmethod
    async def perform_at(cls, when: datetime, payload: P | Mapping[str, Any], *, queue: str | None = None,
                         priority: int | None = None, session: AppTransaction | None = None,
                         unique_key: str | None = None) -> int:
        """Enqueue to run at `when`, a timezone-aware datetime (naive ones are rejected)."""
        requests = [JobRequest(cls, payload, run_at=when, queue=queue, priority=priority, unique_key=unique_key)]
        return (await _queue().enqueue_many(requests, session=session))[0]

    @classmethod
    async def perform_in(cls, delay: float | timedelta, payload: P | Mapping[str, Any], *,
                         queue: str | None = None, priority: int | None = None,
                         session: AppTransaction | None = None, unique_key: str | None = None) -> int:
        """Enqueue to run after `delay` (seconds or a timedelta)."""
        requests = [JobRequest(cls, payload, delay=delay, queue=queue, priority=priority, unique_key=unique_key)]
        return (await _queue().enqueue_many(requests, session=session))[0]

    @classmethod
    async def perform_bulk(cls, payloads: Iterable[P | Mapping[str, Any]], *,
                           session: AppTransaction | None = None) -> list[int]:
        """Validate all, then enqueue all in one transaction: every job is written or none is."""
        return await _queue().enqueue_many([JobRequest(cls, payload) for payload in payloads], session=session)

    @classmethod
    async def perform_now(cls, payload: P | Mapping[str, Any]) -> Any:
        """Run inline, now, in this process: validated, with the job's timeout, no row written."""
        options = cls._options()
        instance = cls(JobContext(job_type=options.name, max_retries=options.max_retries, queue=options.queue))
        return await instance.invoke(validate_payload(cls, payload))  # type: ignore[arg-type]

    # -- enqueue (sync twins: block the calling thread) ------------------------------------------------

    @classmethod
    def perform_later_sync(cls, payload: P | Mapping[str, Any], *, queue: str | None = None,
                           priority: int | None = None, session: AppTransaction | None = None,
                           unique_key: str | None = None) -> int:
        requests = [JobRequest(cls, payload, queue=queue, priority=priority, unique_key=unique_key)]
        return _queue_for_sync().enqueue_many_sync(requests, session=session)[0]

    @classmethod
    def perform_at_sync(cls, when: datetime, payload: P | Mapping[str, Any], *, queue: str | None = None,
                        priority: int | None = None, session: AppTransaction | None = None,
                        unique_key: str | None = None) -> int:
        requests = [JobRequest(cls, payload, run_at=when, queue=queue, priority=priority, unique_key=unique_key)]
        return _queue_for_sync().enqueue_many_sync(requests, session=session)[0]

    @classmethod
    def perform_in_sync(cls, delay: float | timedelta, payload: P | Mapping[str, Any], *,
                        queue: str | None = None, priority: int | None = None,
                        session: AppTransaction | None = None, unique_key: str | None = None) -> int:
        requests = [JobRequest(cls, payload, delay=delay, queue=queue, priority=priority, unique_key=unique_key)]
        return _queue_for_sync().enqueue_many_sync(requests, session=session)[0]

    @classmethod
    def perform_bulk_sync(cls, payloads: Iterable[P | Mapping[str, Any]], *,
                          session: AppTransaction | None = None) -> list[int]:
        return _queue_for_sync().enqueue_many_sync([JobRequest(cls, payload) for payload in payloads],
                                                   session=session)

    @classmethod
    def perform_now_sync(cls, payload: P | Mapping[str, Any]) -> Any:
        refuse_on_event_loop("perform_now_sync", "perform_now")
        return anyio.run(cls.perform_now, payload)

    # -- running ---------------------------------------------------------------------------------------

    async def invoke(self, payload: P) -> Any:
        """Run `perform` once under the job's timeout; a sync `perform` runs in a worker thread.

        A thread cannot be interrupted: a sync job that overruns its timeout (or is cancelled) stops when
        it returns, or earlier if it calls ``self.check_cancelled()`` between steps.
        """
        timeout = self._options().timeout
        if timeout is None:
            return await self._call_perform(payload)
        with anyio.move_on_after(timeout) as scope:
            return await self._call_perform(payload)
        if scope.cancelled_caught:
            raise JobTimeoutError(f"job {self.context.job_type!r} timed out after {timeout:g}s and was cancelled")

    async def _call_perform(self, payload: P) -> Any:
        if self._async_perform:
            return await self.perform(payload)
        cancelled = anyio.get_cancelled_exc_class()
        call = _ThreadCall(self.perform, payload, cancelled, self.context.thread_released or anyio.Event())
        try:
            return await anyio.to_thread.run_sync(call, limiter=self.context.threads, abandon_on_cancel=True)
        except cancelled:
            # Timeout, cancel, lost lease or shutdown while `perform` runs on in its thread: the job keeps its slot
            # until it returns, unless the worker gives up on it (a thread still stuck when the worker must exit).
            with anyio.CancelScope(shield=True):
                await call.released.wait()
            raise
        except _Carried as carried:
            raise carried.exception from None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._async_perform = inspect.iscoroutinefunction(cls.perform)  # asked once per class, not per run

    @staticmethod
    def check_cancelled() -> None:
        """For a sync ``perform``: raise if the job was cancelled or timed out, so it stops promptly."""
        anyio.from_thread.check_cancelled()

    @classmethod
    def _options(cls) -> JobOptions:
        options = cls.__dict__.get("options")
        if options is None:
            raise JobDefinitionError(f"{cls.__qualname__} is not decorated with @job(...)")
        return options


def validate_payload(job_class: type[BaseJob[Any]], payload: object) -> BaseModel:
    """The payload as the job's schema model; PayloadValidationError names every bad field."""
    options = job_class._options()
    if isinstance(payload, options.schema):
        return payload
    if isinstance(payload, BaseModel):
        payload = payload.model_dump()
    try:
        return options.schema.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'payload'}: {err['msg']}" for err in exc.errors()
        )
        raise PayloadValidationError(
            f"invalid payload for job {options.name!r} ({options.schema.__name__}): {problems}"
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:  # raised by the input itself, outside pydantic's checks
        raise PayloadValidationError(
            f"invalid payload for job {options.name!r} ({options.schema.__name__}): {exc}"
        ) from None


class _Carried(Exception):
    """A BaseException raised by a sync `perform`, carried across the thread boundary as an Exception: some
    (GeneratorExit) would otherwise end the awaiting task instead of reaching the code that awaits it."""

    def __init__(self, exception: BaseException) -> None:
        super().__init__(repr(exception))
        self.exception = exception


class _ThreadCall:
    """A sync `perform` as its thread runs it: BaseExceptions carried across as `_Carried`, and `released` set
    once it returns, for a caller that stopped waiting for the result but waits for the thread."""

    def __init__(self, perform: Callable[[Any], Any], payload: Any, cancelled: type[BaseException],
                 released: anyio.Event) -> None:
        self.perform, self.payload, self.cancelled, self.released = perform, payload, cancelled, released

    def __call__(self) -> Any:
        try:
            return self.perform(self.payload)
        except (Exception, self.cancelled):
            raise
        except BaseException as exc:
            raise _Carried(exc) from None
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits any more
                anyio.from_thread.run_sync(self.released.set)


def payload_document(job_class: type[BaseJob[Any]], payload: object) -> str:
    """The validated payload as the JSON text that is stored. PayloadValidationError, with nothing written, for
    what JSON cannot hold as given: NaN and infinities (JSON has none; they would come back as null), bytes that
    are not UTF-8, objects of no JSON type, nesting deeper than pydantic serialises."""
    return model_document(job_class, validate_payload(job_class, payload))


def model_document(job_class: type[BaseJob[Any]], model: BaseModel) -> str:
    """`payload_document` of a payload validated already."""
    try:
        if _has_non_finite_number(model.model_dump()):
            raise ValueError("it holds NaN or an infinity, which JSON cannot represent")
        return model.model_dump_json()
    except (ValueError, TypeError, RecursionError) as exc:
        name, reason = job_class._options().name, str(exc).removeprefix("Error serializing to JSON: ")
        raise PayloadValidationError(
            f"payload for job {name!r} cannot be stored as JSON: {reason.removeprefix('ValueError: ')}"
        ) from None


def result_value(job_class: type[BaseJob[Any]], value: object) -> Any:
    """What `perform` returned, as the JSON value stored for `queue.result()`: validated by the job's result
    model if it declares one; otherwise any value pydantic can turn into JSON (models, dataclasses, dates...).
    ResultError for what cannot be stored; None stays None (no result)."""
    options = job_class._options()
    if value is None and options.result is None:
        return None
    try:
        if options.result is not None:
            value = options.result.model_validate(value.model_dump() if isinstance(value, BaseModel) else value)
        stored = to_jsonable_python(value)
        if _has_non_finite_number(stored):
            raise ValueError("it holds NaN or an infinity, which JSON cannot represent")
        return stored
    except (ValidationError, PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
        raise ResultError(f"job {options.name!r} returned {value!r:.80}, which cannot be stored as its result: "
                          f"{' '.join(str(exc).split())[:300]}") from None


def _has_non_finite_number(value: object) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend(item)
    return False


def _queue() -> "JobQueue":
    from main.services.job_queue import get_job_queue

    return get_job_queue()


def _queue_for_sync() -> "JobQueue":
    refuse_on_event_loop("the *_sync enqueue methods", "the awaitable perform_later / perform_at")
    return _queue()


def refuse_on_event_loop(what: str, instead: str) -> None:
    """Raise JobQueueError if this thread runs an event loop, which a blocking call would stall."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise JobQueueError(f"{what} would block the running event loop; in async code use {instead} instead")
