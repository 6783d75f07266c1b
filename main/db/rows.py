"""The shapes a job has on its way in and out of the hot path: a validated job to insert, a claimed job to run.

Plain slotted dataclasses, not the `Job` entity: thousands are built per second, and neither needs the
columns people read (errors, timestamps, lease).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated job, ready to be written."""

    type: str
    payload: dict[str, Any]
    queue: str
    priority: int
    max_retries: int
    run_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run a job it claimed."""

    id: int
    type: str
    payload: dict[str, Any]
    queue: str
    priority: int
    attempts: int  # this run's attempt, counted at the claim
    max_retries: int
    checkpoint: dict[str, Any] | None
