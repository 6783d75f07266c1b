"""Stop requests for running jobs: from the worker (shutdown), a time limit, or a test's plan."""

from dataclasses import dataclass
from typing import Any

_ANY = object()
SHUTDOWN = "shutdown"  # the stop reason of a worker that is shutting down


@dataclass(frozen=True)
class Interrupt:
    """A test's plan for where a resumable job should stop: build one with the functions below."""

    during_step: str | None = None
    at_cursor: Any = _ANY  # with during_step: stop once this cursor has been checkpointed
    after_step: str | None = None
    after_items: int | None = None  # items advanced in this run

    def due(self, step: str, cursor: Any, items_this_run: int, finished: bool) -> bool:
        if self.after_items is not None and items_this_run >= self.after_items:
            return True
        if finished:
            return self.after_step == step
        return self.during_step == step and (self.at_cursor is _ANY or _same(cursor, self.at_cursor))


def _same(cursor: Any, wanted: Any) -> bool:
    as_list = lambda value: list(value) if isinstance(value, tuple | list) else value  # noqa: E731
    return as_list(cursor) == as_list(wanted)


def interrupt_at(step: str, cursor: Any = _ANY) -> Interrupt:
    """Stop during `step` once `cursor` was reached (any cursor: at its first item)."""
    return Interrupt(during_step=step, at_cursor=cursor)


def interrupt_after_step(step: str) -> Interrupt:
    return Interrupt(after_step=step)


def interrupt_after_items(count: int) -> Interrupt:
    return Interrupt(after_items=count)


class StopSignal:
    """Asks a running job to stop at its next item boundary. Plain jobs have none and run on; resumable jobs
    save their checkpoint and hand themselves back to the queue."""

    def __init__(self, interrupt: Interrupt | None = None) -> None:
        self.reason: str | None = None
        self.interrupt = interrupt

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
