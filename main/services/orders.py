"""Order processing, the demo's business logic shared by both job styles. Each function returns a DbWrite:
what to write for one item, committed with the checkpoint that records the item as done."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, select

from main.base.jobs.continuation import DbWrite
from main.db.entities import Order, OrderStatus, ProcessingLog


def pending_orders() -> Any:
    return select(Order).where(Order.status == OrderStatus.PENDING)


def count_pending(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Order).where(Order.status == OrderStatus.PENDING)).one()


def mark_processed(order_id: int, job_type: str, job_id: int | None) -> DbWrite:
    def write(session: Session) -> None:
        now = datetime.now(UTC)
        session.execute(
            update(Order).where(Order.id == order_id).values(  # type: ignore[arg-type]
                status=OrderStatus.PROCESSED, processed_at=now, processed_by=job_type
            )
        )
        session.add(ProcessingLog(job_type=job_type, kind="order", item_key=str(order_id), job_id=job_id,
                                  processed_at=now))

    return write
