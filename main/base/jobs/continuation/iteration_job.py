"""IterationJob: the enumerator style (like Shopify's job-iteration).

    @job(name="ProcessOrdersIterationJob")
    class ProcessOrdersIterationJob(IterationJob[ProcessOrders]):
        def build_enumerator(self, payload, cursor):
            return self.enumerate.records(select(Order).where(Order.status == "pending"), cursor=cursor)

        async def each_iteration(self, order, payload):
            self.atomically(lambda session: mark_processed(session, order))

The cursor is saved after each item (per ``checkpoint_policy``). It is a ContinuableJob with one step,
"iterate", so both styles share the checkpoint store, the interruption rules and the hooks. As in
job-iteration, ``perform`` is not yours to override, and ``build_enumerator`` returning None means "nothing to
do": the job completes.
"""

import inspect
from abc import abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from typing import Any

from main.base.jobs.base_job import P
from main.base.jobs.continuation.continuable_job import ContinuableJob, Step
from main.base.jobs.continuation.enumerators import Enumerator, Pair, pairs
from main.errors import EnumeratorError, JobDefinitionError

ITERATE = "iterate"


class IterationJob(ContinuableJob[P]):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.perform is not IterationJob.perform:
            raise JobDefinitionError(
                f"{cls.__qualname__} overrides perform, which an IterationJob runs for you: put the work on one "
                "item in each_iteration, what to walk over in build_enumerator, and set-up in on_start or "
                "on_resume (or subclass ContinuableJob to write perform with steps)"
            )

    @abstractmethod
    def build_enumerator(self, payload: P, cursor: Any) -> Enumerator | None | Awaitable[Enumerator | None]:
        """The items still to do, as ``(item, cursor)`` pairs, starting after `cursor` (None: from the start).
        None: there is nothing to do, and the job completes. May be an ``async def``."""

    @abstractmethod
    async def each_iteration(self, item: Any, payload: P) -> None:
        """Process one item."""

    async def count(self, payload: P) -> int | None:
        """How many items there are in all, for progress; None if unknown."""
        return None

    async def perform(self, payload: P) -> None:
        await self.step(self._iterate, name=ITERATE)

    async def _iterate(self, step: Step) -> None:
        if step.total is None:
            step.total = await self.count(self.payload)
        enumerator = self.build_enumerator(self.payload, step.cursor)
        if inspect.isawaitable(enumerator):  # an `async def build_enumerator` is fine too
            enumerator = await enumerator
        if enumerator is None:
            self.context.log.info("nothing_to_iterate", note="build_enumerator returned None; the job completes")
            return
        if not isinstance(enumerator, AsyncIterable | Iterable):
            raise EnumeratorError(
                f"job {self.context.job_type!r}: build_enumerator returned {type(enumerator).__qualname__}; return "
                "an enumerator from self.enumerate, any iterable or async iterable of (item, cursor) pairs, or "
                "None when there is nothing to do"
            )
        async for item, cursor in self._checked(pairs(enumerator)):
            await self.each_iteration(item, self.payload)
            await step.advance(cursor)

    async def _checked(self, enumerator: AsyncIterator[Any]) -> AsyncIterator[Pair]:
        async for pair in enumerator:
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise EnumeratorError(
                    f"job {self.context.job_type!r}: build_enumerator yielded {pair!r:.80}, not an (item, cursor) "
                    "pair; yield the item together with the cursor to resume after it"
                )
            yield pair[0], pair[1]
