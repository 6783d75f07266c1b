"""The checkpoint a resumable job keeps in its own `jobs.checkpoint` column, and when it is written.

    {"steps": {"process_orders": {"cursor": 4711, "done": 120, "total": 10000, "finished": false}},
     "current": "process_orders", "resumptions": 2, "saves": 37, "interrupted_by": "shutdown"}

Both styles use it: a step-based job has one entry per step; an iteration job has one step, "iterate".
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, field_serializer, field_validator
from pydantic_core import to_jsonable_python

from main.base.jobs.continuation import cursor as cursor_codec


class StepState(BaseModel):
    cursor: Any = None  # the Python value; stored in the type-tagged JSON of continuation/cursor.py
    done: int = 0  # items advanced in this step, over all runs
    total: int | None = None  # when the job knows it, for progress bars
    finished: bool = False

    @field_validator("cursor", mode="before")
    @classmethod
    def _decode_cursor(cls, stored: Any) -> Any:
        return cursor_codec.decode(stored)

    @field_serializer("cursor", when_used="json")
    def _encode_cursor(self, value: Any) -> Any:
        return cursor_codec.encode(value, where="checkpoint")


class Checkpoint(BaseModel):
    steps: dict[str, StepState] = Field(default_factory=dict)
    current: str | None = None
    runs: int = 0  # runs started, over all attempts and resumptions: on_start runs only in the first
    resumptions: int = 0  # times the job was interrupted and handed back to be resumed
    saves: int = 0  # checkpoints written
    save_seconds: float = 0.0  # time spent writing them: the checkpoint overhead
    interrupted_by: str | None = None

    @property
    def items_done(self) -> int:
        """Items advanced over all steps and runs."""
        return sum(step.done for step in self.steps.values())

    def summary(self) -> dict[str, Any]:
        """What a person wants to see: the current step, its cursor (as JSON: a datetime as ISO text),
        done/total, resumptions."""
        step = self.steps.get(self.current or "") or StepState()
        return {"step": self.current, "cursor": to_jsonable_python(step.cursor), "done": step.done, "total": step.total,
                "resumptions": self.resumptions, "finished_steps": [n for n, s in self.steps.items() if s.finished]}


def checkpoint_summary(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if not raw else Checkpoint.model_validate(raw).summary()


@dataclass(frozen=True)
class CheckpointPolicy:
    """When to write the checkpoint between items: every N items, every T seconds, or whichever comes first.

    It is also written, whatever the policy, when a step finishes, when the job is interrupted, before an
    error is handed to the retry policy, and when the job completes. After a crash (kill -9) at most the items
    since the last write run again (their `atomically` writes never committed, so they are not doubled).
    """

    every_items: int | None = 1
    every_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.every_items is None and self.every_seconds is None:
            raise ValueError("CheckpointPolicy needs every_items, every_seconds, or both")
        if self.every_items is not None and self.every_items < 1:
            raise ValueError(f"CheckpointPolicy.every_items must be >= 1, got {self.every_items}")
        if self.every_seconds is not None and self.every_seconds <= 0:
            raise ValueError(f"CheckpointPolicy.every_seconds must be > 0, got {self.every_seconds}")

    @classmethod
    def every_item(cls) -> "CheckpointPolicy":
        return cls(every_items=1)

    @classmethod
    def every(cls, items: int) -> "CheckpointPolicy":
        return cls(every_items=items)

    @classmethod
    def every_interval(cls, seconds: float) -> "CheckpointPolicy":
        return cls(every_items=None, every_seconds=seconds)

    def due(self, items_since: int, seconds_since: float) -> bool:
        return (self.every_items is not None and items_since >= self.every_items) or (
            self.every_seconds is not None and seconds_since >= self.every_seconds
        )


# A checkpoint a second: a commit per item would cost more than a short item itself (1 ms items ran at half
# speed); items that take a second or longer are still saved one by one. Crash-repeat window: one second.
DEFAULT_CHECKPOINT_POLICY = CheckpointPolicy.every_interval(1.0)
