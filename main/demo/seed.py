"""Demo data with realistic mixed statuses, generated from a fixed random seed (the same data every time).

    quick:  50 customers x 2 orders = 100 orders;                       1 campaign, 500 recipients
    full:  100 customers x 50 orders + 5,000 guest orders = 10,000;     1 campaign, 5,000 recipients
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, insert, update
from sqlmodel import SQLModel, select

from main.db.engine import Database
from main.db.entities import (
    DEMO_TABLES,
    CampaignRecipient,
    Customer,
    CustomerReport,
    EmailCampaign,
    EmailDelivery,
    Order,
    OrderStatus,
    ProcessingLog,
)

Size = Literal["quick", "full"]
_STATUS_MIX = [(OrderStatus.PENDING, 60), (OrderStatus.PROCESSED, 15), (OrderStatus.SHIPPED, 15),
               (OrderStatus.CANCELLED, 7), (OrderStatus.REFUNDED, 3)]
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Linus", "Margaret", "Donald", "Frances"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Torvalds", "Hamilton", "Knuth", "Allen"]


@dataclass(frozen=True)
class SeedSize:
    customers: int
    orders_per_customer: int
    guest_orders: int
    recipients: int


SIZES: dict[str, SeedSize] = {
    "quick": SeedSize(customers=50, orders_per_customer=2, guest_orders=0, recipients=500),
    "full": SeedSize(customers=100, orders_per_customer=50, guest_orders=5_000, recipients=5_000),
}


def create_tables(database: Database) -> None:
    with database.transaction() as session:
        SQLModel.metadata.create_all(session.connection(), tables=DEMO_TABLES)


def drop_tables(database: Database) -> None:
    with database.transaction() as session:
        SQLModel.metadata.drop_all(session.connection(), tables=DEMO_TABLES)


def seed(database: Database, size: Size = "quick", *, all_pending: bool = False) -> dict[str, int]:
    """Replace the demo data with a fresh set. `all_pending` starts every order as pending."""
    spec = SIZES[size]
    rng = random.Random(42)
    now = datetime.now(UTC)
    create_tables(database)
    with database.transaction() as session:
        for table in reversed(DEMO_TABLES):
            session.execute(delete(table))
        customers = [
            {"id": n, "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "email": f"customer{n}@example.com",
             "tier": rng.choices(["standard", "gold", "platinum"], [80, 15, 5])[0]}
            for n in range(1, spec.customers + 1)
        ]
        session.execute(insert(Customer), customers)
        owners = [c["id"] for c in customers for _ in range(spec.orders_per_customer)] + [None] * spec.guest_orders
        statuses, weights = zip(*_STATUS_MIX, strict=True)
        orders = [
            {"customer_id": owner, "amount_cents": rng.randint(500, 50_000),
             "status": OrderStatus.PENDING if all_pending else rng.choices(statuses, weights)[0],
             "created_at": now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))}
            for owner in owners
        ]
        session.execute(insert(Order), orders)
        campaign = EmailCampaign(name=f"{size} launch", subject="Our autumn collection is here", created_at=now)
        session.add(campaign)
        session.flush()
        session.execute(insert(CampaignRecipient), [
            {"campaign_id": campaign.id, "email": f"reader{n}@example.com", "name": f"Reader {n}"}
            for n in range(1, spec.recipients + 1)
        ])
    return stats(database)


def reset_orders(database: Database) -> int:
    """Every order back to pending; forget what the demo jobs did (logs, reports, deliveries)."""
    with database.transaction() as session:
        for table in (ProcessingLog, CustomerReport, EmailDelivery):
            session.execute(delete(table))
        return session.execute(
            update(Order).values(status=OrderStatus.PENDING, processed_at=None, processed_by=None)
        ).rowcount  # type: ignore[attr-defined]


def stats(database: Database) -> dict[str, int]:
    """Counts of the demo's data, and of what the jobs did to it."""
    with database.transaction() as session:
        def count(model: type[SQLModel], *where: object) -> int:
            return session.exec(select(func.count()).select_from(model).where(*where)).one()  # type: ignore[arg-type]

        return {
            "customers": count(Customer),
            "orders": count(Order),
            "orders_pending": count(Order, Order.status == OrderStatus.PENDING),
            "orders_processed": count(Order, Order.status == OrderStatus.PROCESSED),
            "recipients": count(CampaignRecipient),
            "deliveries": count(EmailDelivery),
            "reports": count(CustomerReport),
            "log_entries": count(ProcessingLog),
        }
