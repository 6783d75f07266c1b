"""Retry delays: job options -> a tenacity wait strategy -> seconds to wait after a failed attempt.

With the defaults (base_delay=2, max_delay=3600, no jitter) the waits after attempts 1, 2, 3, ... are:

    exponential  2, 4, 8, 16, 32, ... capped at 3600
    linear       2, 4, 6, 8, 10, ... capped at 3600
    fixed        2, 2, 2, 2, 2, ...

`jitter` adds a random 0..jitter seconds on top, so that jobs failing together do not retry together.
"""

from dataclasses import dataclass
from typing import Literal, get_args

from tenacity import (
    RetryCallState,
    wait_exponential,
    wait_fixed,
    wait_incrementing,
    wait_random,
)
from tenacity.wait import wait_base

BackoffKind = Literal["exponential", "linear", "fixed"]
BACKOFF_KINDS: tuple[str, ...] = get_args(BackoffKind)


@dataclass(frozen=True)
class Backoff:
    kind: BackoffKind = "exponential"
    base_delay: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.0

    def wait_strategy(self) -> wait_base:
        strategies: dict[str, wait_base] = {
            "exponential": wait_exponential(multiplier=self.base_delay, max=self.max_delay),
            "linear": wait_incrementing(start=self.base_delay, increment=self.base_delay, max=self.max_delay),
            "fixed": wait_fixed(min(self.base_delay, self.max_delay)),
        }
        strategy = strategies[self.kind]
        return strategy + wait_random(0, self.jitter) if self.jitter else strategy

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt` (1 = the first run)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return float(self.wait_strategy()(state))


OUTAGE_MAX_WAIT = 5.0  # seconds: the longest any part of a worker waits before trying the database again


def outage_delay(first: float, failures: int) -> float:
    """How long a part of the worker (claims, outcomes, the LISTEN connection) waits after `failures` failed
    attempts in a row to reach the database: `first`, then doubling, at most OUTAGE_MAX_WAIT. One policy, so an
    outage is waited out the same way everywhere and nobody hammers a server that is starting."""
    return Backoff("exponential", base_delay=first, max_delay=OUTAGE_MAX_WAIT).delay(failures)
