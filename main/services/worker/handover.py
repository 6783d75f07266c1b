"""Claimed jobs on their way from the producer to the slots: a queue the slots take from, and an event for each
slot that waits because the queue is empty.

anyio's memory stream would do, but it builds an event for every item received, whether the receiver waits or
not; here a slot that finishes a job while others are queued takes the next one at once, and an event is built
only when a slot has nothing to do.
"""

from collections import deque
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Handover(Generic[T]):
    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._idle: deque[anyio.Event] = deque()  # one per slot waiting for an item, oldest first
        self._closed = False

    def put(self, item: T) -> None:
        """Queue an item and wake a waiting slot, if one waits."""
        if self._closed:
            raise anyio.ClosedResourceError("the handover is closed: no more jobs are started")
        self._items.append(item)
        if self._idle:
            self._idle.popleft().set()

    def close(self) -> list[T]:
        """No more items: returns those no slot took, and `take` returns None from now on."""
        self._closed = True
        left, self._items = list(self._items), deque()
        while self._idle:
            self._idle.popleft().set()
        return left

    async def take(self) -> T | None:
        """The next item, waiting for one if none is queued; None once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            woken = anyio.Event()
            self._idle.append(woken)
            try:
                await woken.wait()
            finally:
                if not woken.is_set():  # cancelled while waiting: a later item must wake another slot
                    self._idle.remove(woken)
        return self._items.popleft()
