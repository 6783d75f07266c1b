"""IterationJob: the enumerator style (like Shopify's job-iteration).

    @job(name="ProcessOrdersIterationJob")
    class ProcessOrdersIterationJob(IterationJob[ProcessOrders]):
        def build_enumerator(self, payload, cursor):
            return self.enumerate.records(select(Order).where(Order.status == "pending"), cursor=cursor)

        async def each_iteration(self, order, payload):
            self.atomically(lambda session: mark_processed(session, order))

The cursor is saved after each item (per ``checkpoint_policy``). It is a ContinuableJob with one step,
"iterate", so both styles share the checkpoint store, the interruption rules and the hooks.
"""

from abc import abstractmethod
from typing import Any

from main.base.jobs.base_job import P
from main.base.jobs.continuation.continuable_job import ContinuableJob, Step
from main.base.jobs.continuation.enumerators import Enumerator, pairs

ITERATE = "iterate"


class IterationJob(ContinuableJob[P]):
    @abstractmethod
    def build_enumerator(self, payload: P, cursor: Any) -> Enumerator:
        """The items still to do, as ``(item, cursor)`` pairs, starting after `cursor` (None: from the start)."""

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
        async for item, cursor in pairs(self.build_enumerator(self.payload, step.cursor)):
            await self.each_iteration(item, self.payload)
            await step.advance(cursor)
