"""GenerateReports, in both styles: nested iteration over customers and their orders, one report per customer."""

from collections.abc import AsyncIterator
from typing import Any

import anyio
from pydantic import BaseModel, Field
from sqlmodel import Session, func, select

from main.base.jobs import job
from main.base.jobs.continuation import ContinuableJob, IterationJob, Step
from main.base.jobs.continuation.enumerators import Enumerator
from main.db.entities import Customer, Order, OrderStatus
from main.services.reports import add_to_report, customers, reportable_orders


class GenerateReports(BaseModel):
    item_delay: float = Field(0.0, ge=0, le=10)  # simulated work per order, seconds


def count_reportable(session: Session) -> int:
    query = select(func.count()).select_from(Order).where(
        Order.customer_id.is_not(None), Order.status != OrderStatus.CANCELLED  # type: ignore[union-attr]
    )
    return session.exec(query).one()


class _Reports:
    """The nested enumerator both styles use: customers, then each customer's orders."""

    enumerate: Any

    def customer_orders(self, cursor: Any) -> AsyncIterator[tuple[Any, Any]]:
        return self.enumerate.nested(
            lambda customer_cursor: self.enumerate.records(customers(), cursor=customer_cursor),
            lambda customer, order_cursor: self.enumerate.records(reportable_orders(customer.id), cursor=order_cursor),
            cursor=cursor,
        )


@job(name="GenerateReportsJob", max_retries=3, backoff="exponential", base_delay=1)
class GenerateReportsJob(_Reports, ContinuableJob[GenerateReports]):
    async def perform(self, payload: GenerateReports) -> None:
        await self.step(self.build_reports)

    async def build_reports(self, step: Step) -> None:
        if step.total is None:
            step.total = await self.read(count_reportable)
        async for (customer, order), cursor in self.customer_orders(step.cursor):
            await anyio.sleep(self.payload.item_delay)
            self.atomically(add_to_report(customer.id, order, self.options.name, self.context.job_id))
            await step.advance(cursor)


@job(name="GenerateReportsIterationJob", max_retries=3, backoff="exponential", base_delay=1)
class GenerateReportsIterationJob(_Reports, IterationJob[GenerateReports]):
    def build_enumerator(self, payload: GenerateReports, cursor: Any) -> Enumerator:
        return self.customer_orders(cursor)

    async def count(self, payload: GenerateReports) -> int:
        return await self.read(count_reportable)

    async def each_iteration(self, item: tuple[Customer, Order], payload: GenerateReports) -> None:
        customer, order = item
        await anyio.sleep(payload.item_delay)
        self.atomically(add_to_report(customer.id, order, self.options.name, self.context.job_id))  # type: ignore[arg-type]
