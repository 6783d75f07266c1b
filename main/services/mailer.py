"""A stand-in e-mail gateway with the failure modes of a real one, so the demo and tests show retries.

Mail to ``@flaky.example`` fails on the first two attempts (a gateway that times out now and then); mail to
``@down.example`` always fails (a gateway that is down). Everything else is "sent": logged, not delivered.
"""

from main.log import get_logger

FLAKY_FAILURES = 2


class MailerUnavailableError(Exception):
    """The gateway did not accept the message; trying again later may work."""


async def send_email(to: str, subject: str, body: str, *, attempt: int) -> None:
    domain = to.rsplit("@", 1)[-1].lower()
    if domain == "down.example" or (domain == "flaky.example" and attempt <= FLAKY_FAILURES):
        raise MailerUnavailableError(f"gateway for {domain} did not answer (attempt {attempt})")
    get_logger().info("email_sent", to=to, subject=subject, chars=len(body))
