"""ProcessOrders, in both styles: every pending order processed exactly once, in id order."""

import anyio
from pydantic import BaseModel, Field

from main.base.jobs import job
from main.base.jobs.continuation import ContinuableJob, IterationJob, Step
from main.base.jobs.continuation.enumerators import Enumerator
from main.db.entities import Order
from main.services.orders import count_pending, mark_processed, pending_orders


class ProcessOrders(BaseModel):
    item_delay: float = Field(0.0, ge=0, le=10)  # simulated work per order, seconds


@job(name="ProcessOrdersJob", max_retries=3, backoff="exponential", base_delay=1)
class ProcessOrdersJob(ContinuableJob[ProcessOrders]):
    """Step style: count, then process; each order's update and log row commit with the cursor."""

    async def perform(self, payload: ProcessOrders) -> None:
        await self.step(self.process_orders)
        await self.step(self.summarize)

    async def process_orders(self, step: Step) -> None:
        if step.total is None:
            step.total = await self.read(count_pending)
        async for order, cursor in self.enumerate.records(pending_orders(), cursor=step.cursor):
            await anyio.sleep(self.payload.item_delay)
            self.atomically(mark_processed(order.id, self.options.name, self.context.job_id))
            await step.advance(cursor)

    async def summarize(self, step: Step) -> None:
        done = self.checkpoint.steps["process_orders"].done
        self.context.log.info("orders_processed", count=done, resumptions=self.checkpoint.resumptions)


@job(name="ProcessOrdersIterationJob", max_retries=3, backoff="exponential", base_delay=1)
class ProcessOrdersIterationJob(IterationJob[ProcessOrders]):
    """Enumerator style: the same work, one order per iteration."""

    def build_enumerator(self, payload: ProcessOrders, cursor: int | None) -> Enumerator:
        return self.enumerate.records(pending_orders(), cursor=cursor)

    async def count(self, payload: ProcessOrders) -> int:
        return await self.read(count_pending)

    async def each_iteration(self, order: Order, payload: ProcessOrders) -> None:
        await anyio.sleep(payload.item_delay)
        self.atomically(mark_processed(order.id, self.options.name, self.context.job_id))  # type: ignore[arg-type]
