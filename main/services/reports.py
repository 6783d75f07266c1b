"""Customer reports, the demo's nested iteration: each order of a customer is added to that customer's one
report, in the same transaction as the cursor that marks the order done."""

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select

from main.base.jobs.continuation import DbWrite
from main.db.entities import Customer, CustomerReport, Order, OrderStatus, ProcessingLog


def customers() -> Any:
    return select(Customer)


def reportable_orders(customer_id: int) -> Any:
    return select(Order).where(Order.customer_id == customer_id, Order.status != OrderStatus.CANCELLED)


def add_to_report(customer_id: int, order: Order, job_type: str, job_id: int | None) -> DbWrite:
    def write(session: Session) -> None:
        now = datetime.now(UTC)
        report = session.exec(
            select(CustomerReport).where(CustomerReport.customer_id == customer_id, CustomerReport.job_type == job_type)
        ).first() or CustomerReport(customer_id=customer_id, job_type=job_type, updated_at=now)
        report.order_count += 1
        report.total_cents += order.amount_cents
        report.updated_at = now
        session.add(report)
        session.add(ProcessingLog(job_type=job_type, kind="report-order", item_key=f"{customer_id}:{order.id}",
                                  job_id=job_id, processed_at=now))

    return write
