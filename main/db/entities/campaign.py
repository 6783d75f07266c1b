"""The demo's e-mail campaigns: recipients, and one delivery per recipient and job type."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from main.db.types import UTCDateTime


class EmailCampaign(SQLModel, table=True):
    __tablename__ = "email_campaigns"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    subject: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime)


class CampaignRecipient(SQLModel, table=True):
    __tablename__ = "campaign_recipients"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="email_campaigns.id", index=True)
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)


class EmailDelivery(SQLModel, table=True):
    __tablename__ = "email_deliveries"
    __table_args__ = (sa.UniqueConstraint("recipient_id", "job_type"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="email_campaigns.id", index=True)
    recipient_id: int = Field(foreign_key="campaign_recipients.id")
    job_type: str = Field(max_length=200)
    sent_at: datetime = Field(sa_type=UTCDateTime)
