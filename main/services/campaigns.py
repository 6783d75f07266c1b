"""E-mail campaigns, the demo's batch iteration: recipients in batches, one delivery row per recipient."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, func, select

from main.base.jobs.continuation import DbWrite
from main.db.entities import (
    CampaignRecipient,
    EmailCampaign,
    EmailDelivery,
    ProcessingLog,
)
from main.errors import JobQueueError


def latest_campaign_id(session: Session) -> int:
    campaign_id = session.exec(select(func.max(EmailCampaign.id))).one()
    if campaign_id is None:
        raise JobQueueError("there is no e-mail campaign: run `jobqueue demo seed` first")
    return campaign_id


def recipients(campaign_id: int) -> Any:
    return select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)


def count_recipients(session: Session, campaign_id: int) -> int:
    query = select(func.count()).select_from(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)
    return session.exec(query).one()


def record_deliveries(batch: Sequence[CampaignRecipient], job_type: str, job_id: int | None) -> DbWrite:
    def write(session: Session) -> None:
        now = datetime.now(UTC)
        for recipient in batch:
            assert recipient.id is not None
            session.add(EmailDelivery(campaign_id=recipient.campaign_id, recipient_id=recipient.id,
                                      job_type=job_type, sent_at=now))
            session.add(ProcessingLog(job_type=job_type, kind="email", item_key=str(recipient.id), job_id=job_id,
                                      processed_at=now))

    return write
