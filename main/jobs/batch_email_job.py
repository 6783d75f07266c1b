"""BatchEmail, in both styles: a campaign's recipients in batches of 50, one delivery per recipient."""

from typing import Any

import anyio
from pydantic import BaseModel, Field

from main.base.jobs import job
from main.base.jobs.continuation import ContinuableJob, IterationJob, Step
from main.base.jobs.continuation.enumerators import Enumerator
from main.db.entities import CampaignRecipient
from main.services.campaigns import (
    count_recipients,
    latest_campaign_id,
    recipients,
    record_deliveries,
)


class BatchEmail(BaseModel):
    campaign_id: int | None = None  # None: the newest campaign
    batch_size: int = Field(50, ge=1, le=1000)
    item_delay: float = Field(0.0, ge=0, le=10)  # simulated sending time per batch, seconds


class _Campaign:
    read: Any
    payload: BatchEmail

    async def campaign_id(self) -> int:
        return self.payload.campaign_id or await self.read(latest_campaign_id)

    async def batches_total(self, campaign_id: int) -> int:
        recipients_count = await self.read(lambda session: count_recipients(session, campaign_id))
        return -(-recipients_count // self.payload.batch_size)


@job(name="BatchEmailJob", max_retries=3, backoff="exponential", base_delay=1)
class BatchEmailJob(_Campaign, ContinuableJob[BatchEmail]):
    async def perform(self, payload: BatchEmail) -> None:
        await self.step(self.send_batches)

    async def send_batches(self, step: Step) -> None:
        campaign_id = await self.campaign_id()
        if step.total is None:
            step.total = await self.batches_total(campaign_id)
        batches = self.enumerate.batches(recipients(campaign_id), cursor=step.cursor, size=self.payload.batch_size)
        async for batch, cursor in batches:
            await anyio.sleep(self.payload.item_delay)
            self.atomically(record_deliveries(batch, self.options.name, self.context.job_id))
            await step.advance(cursor)


@job(name="BatchEmailIterationJob", max_retries=3, backoff="exponential", base_delay=1)
class BatchEmailIterationJob(_Campaign, IterationJob[BatchEmail]):
    async def build_enumerator(self, payload: BatchEmail, cursor: Any) -> Enumerator:
        campaign_id = await self.campaign_id()
        return self.enumerate.batches(recipients(campaign_id), cursor=cursor, size=payload.batch_size)

    async def count(self, payload: BatchEmail) -> int:
        return await self.batches_total(await self.campaign_id())

    async def each_iteration(self, batch: list[CampaignRecipient], payload: BatchEmail) -> None:
        await anyio.sleep(payload.item_delay)
        self.atomically(record_deliveries(batch, self.options.name, self.context.job_id))
