"""EmailJob: send one e-mail; retried with exponential backoff when the gateway fails."""

from pydantic import BaseModel, Field, field_validator

from main.base.jobs import BaseJob, job
from main.services.mailer import send_email


class Email(BaseModel):
    to: str = Field(max_length=320)
    subject: str = Field(min_length=1, max_length=200)
    body: str = ""

    @field_validator("to")
    @classmethod
    def _looks_like_an_address(cls, value: str) -> str:
        local, at, domain = value.partition("@")
        if not (local and at and "." in domain):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value


@job(name="EmailJob", max_retries=3, backoff="exponential", base_delay=1.0, max_delay=300, timeout=30)
class EmailJob(BaseJob[Email]):
    async def perform(self, payload: Email) -> None:
        await send_email(payload.to, payload.subject, payload.body, attempt=self.context.attempt)
