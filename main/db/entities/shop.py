"""The demo's shop: customers and their orders (guest orders have no customer)."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import UTCDateTime


class OrderStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Customer(SQLModel, table=True):
    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    tier: str = Field(default="standard", max_length=20)


class Order(SQLModel, table=True):
    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customers.id", index=True)
    amount_cents: int
    status: OrderStatus = Field(
        default=OrderStatus.PENDING, index=True,
        sa_type=sa.Enum(OrderStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
    )
    created_at: datetime = Field(sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    processed_by: str | None = Field(default=None, max_length=200)  # job type that processed it


class CustomerReport(SQLModel, table=True):
    """One report per customer and job type, built up order by order."""

    __tablename__ = "customer_reports"
    __table_args__ = (sa.UniqueConstraint("customer_id", "job_type"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id")
    job_type: str = Field(max_length=200)
    order_count: int = 0
    total_cents: int = 0
    updated_at: datetime = Field(sa_type=UTCDateTime)
