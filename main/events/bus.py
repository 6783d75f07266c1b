"""The event bus: who listens to which events, and how an event reaches them without ever holding up a job.

    queue.subscribe("job.failed", alert)            # sync or async; an EventType, a name or a pattern ("job.*")

An emitter pays one dictionary lookup when nobody listens to its event type (the event is not even built).
Subscribers are isolated from the jobs and from each other: `emit` only appends the event to each subscriber's
mailbox (bounded: when a subscriber falls behind, new events for it are dropped and counted, never queued
without end) and returns; a task per subscriber hands the events over in order, an async handler under a
timeout, a sync one in a thread of its own. A handler that raises is logged and gets the next event.

Built-in observers (the log lines, the metrics) are `attach`ed instead: called in the emitting thread, they
must be quick and must not block.
"""

import contextlib
import fnmatch
import inspect
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import EventLoopToken
from structlog.typing import FilteringBoundLogger

from main.errors import EventSubscriptionError
from main.events.catalogue import CATALOGUE, Event, EventType
from main.services.waker import Waker

Handler = Callable[[Event], Awaitable[None] | None]
Observer = Callable[[Event], None]


class Subscription:
    """One subscriber: the event types it listens to, its mailbox, and what became of its events."""

    def __init__(self, types: frozenset[EventType], handler: Handler, *, name: str, buffer: int, timeout: float,
                 log: FilteringBoundLogger) -> None:
        self.types, self.handler, self.name, self.buffer, self.timeout = types, handler, name, buffer, timeout
        self.log = log.bind(subscriber=name)
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None))  # noqa: B004  (an object with an async __call__)
        self.delivered = self.failed = self.dropped = 0
        self._mailbox: deque[Event] = deque()
        self._in_hand = 0  # taken from the mailbox, not yet handed over
        self._lock = threading.Lock()
        self._arrived = Waker()
        self._thread = CapacityLimiter(1)  # a sync handler's: one at a time, in order

    def put(self, event: Event) -> None:
        with self._lock:
            if len(self._mailbox) >= self.buffer:
                self.dropped += 1
                first_drop = self.dropped == 1
            else:
                self._mailbox.append(event)
                first_drop = False
                if len(self._mailbox) > 1:
                    return  # the delivery task was woken by the first one
        if first_drop:
            self.log.warning("event_subscriber_lagging", buffer=self.buffer,
                             note="its mailbox is full: events for it are dropped (counted in .dropped) until it "
                                  "catches up; make the handler faster or raise buffer=")
        else:
            self._arrived.wake()

    @property
    def pending(self) -> int:
        """Events not yet handed over, those in hand included."""
        return len(self._mailbox) + self._in_hand

    async def deliver(self) -> None:
        """Hand over the events that arrive, in order, until cancelled: what waits is taken as one batch."""
        self._arrived.bind()
        try:
            while True:
                with self._lock:
                    batch = list(self._mailbox)
                    self._mailbox.clear()
                    self._in_hand = len(batch)
                if not batch:
                    await self._arrived.wait()
                elif self.is_async:
                    await self._hand_over(batch)
                else:  # one hop to its thread per batch, not per event
                    await anyio.to_thread.run_sync(self._call_each, batch, limiter=self._thread,
                                                   abandon_on_cancel=True)
        finally:
            self._arrived.unbind()

    async def _hand_over(self, batch: list[Event]) -> None:
        """Each event to the async handler under the timeout: one cancel scope for the batch, its deadline moved
        before each call (a scope per call would cost more than most handlers)."""
        index = 0
        while index < len(batch):
            with anyio.CancelScope() as scope:
                while index < len(batch):
                    scope.deadline = anyio.current_time() + self.timeout
                    try:
                        await self.handler(batch[index])  # type: ignore[misc]
                    except Exception as error:
                        self._failed(batch[index], f"{type(error).__name__}: {error}")
                    else:
                        self.delivered += 1
                    index += 1
                    self._in_hand -= 1
            if scope.cancelled_caught:  # batch[index]'s handler overran its timeout
                self._failed(batch[index], f"took longer than its timeout of {self.timeout:g}s")
                index += 1
                self._in_hand -= 1

    def _call_each(self, batch: list[Event]) -> None:
        """In the subscriber's thread (a sync handler)."""
        for event in batch:
            try:
                self.handler(event)
            except Exception as error:
                self._failed(event, f"{type(error).__name__}: {error}")
            else:
                self.delivered += 1
            self._in_hand -= 1

    def _failed(self, event: Event, error: str) -> None:
        """Isolated: logged and counted; the next event is delivered as usual."""
        self.failed += 1
        self.log.error("event_subscriber_failed", event_type=event.type.value, job_id=event.fields.get("job_id"),
                       error=error)


class EventBus:
    def __init__(self, worker_id: str, log: FilteringBoundLogger) -> None:
        self.worker_id, self.log = worker_id, log
        self._subscriptions: list[Subscription] = []
        self._observers: list[tuple[frozenset[EventType], Observer]] = []
        self._routes: dict[EventType, tuple[Callable[[Event], None], ...]] = {}
        # Set while delivering: the task group that runs one delivery task per subscriber, and the event loop it
        # runs in (its token and thread), so that a subscription made from another thread starts there.
        self._delivering: tuple[anyio.abc.TaskGroup, EventLoopToken, int] | None = None
        self._lock = threading.Lock()  # subscriptions and the start and end of delivering, from any thread

    # -- listening -------------------------------------------------------------------------------------

    def subscribe(self, pattern: EventType | str, handler: Handler, *, name: str | None = None,
                  buffer: int = 10_000, timeout: float = 10.0) -> Subscription:
        """Call `handler(event)` for every event `pattern` matches: an EventType, an event name or a glob
        ("job.*", "*"). Delivered by the worker (or inside `delivering()`); see the module's docstring."""
        if not callable(handler):
            raise EventSubscriptionError(f"the handler for {pattern!r} must be callable, got {type(handler).__name__}")
        if not (isinstance(buffer, int) and buffer >= 1) or not timeout > 0:
            raise EventSubscriptionError(f"buffer must be an integer >= 1 and timeout > 0 seconds; got {buffer!r}, "
                                         f"{timeout!r}")
        subscription = Subscription(event_types(pattern), handler, name=name or _name_of(handler), buffer=buffer,
                                    timeout=timeout, log=self.log)
        with self._lock:
            self._subscriptions.append(subscription)
            self._route()
            delivering = self._delivering
        if delivering is not None:
            _start(subscription, *delivering)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """No more events for it (those already in its mailbox are still delivered while the bus delivers)."""
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
                self._route()

    def attach(self, pattern: EventType | str, observer: Observer) -> None:
        """Call `observer(event)` in the emitting thread, at once: for quick built-in observers (logs, metrics)."""
        with self._lock:
            self._observers.append((event_types(pattern), observer))
            self._route()

    def _route(self) -> None:
        """Under the lock. Emitters read the routes without it: they are replaced whole, never changed."""
        routes: dict[EventType, list[Callable[[Event], None]]] = {}
        for types, observer in self._observers:
            for event_type in types:
                routes.setdefault(event_type, []).append(observer)
        for subscription in self._subscriptions:
            for event_type in subscription.types:
                routes.setdefault(event_type, []).append(subscription.put)
        self._routes = {event_type: tuple(targets) for event_type, targets in routes.items()}

    # -- emitting --------------------------------------------------------------------------------------

    def wants(self, event_type: EventType) -> bool:
        """Whether anyone listens to `event_type` (to skip building what only an event would carry)."""
        return event_type in self._routes

    def emit(self, event_type: EventType, /, **fields: Any) -> None:
        targets = self._routes.get(event_type)
        if targets is None:
            return
        event = Event(event_type, datetime.now(UTC), self.worker_id, fields)
        for target in targets:
            try:
                target(event)
            except Exception as error:  # an observer's bug is logged, never raised into a job or the worker
                self.log.error("event_observer_failed", event_type=event_type.value,
                               error=f"{type(error).__name__}: {error}")

    # -- delivering ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def delivering(self, *, grace: float = 5.0) -> AsyncIterator[None]:
        """Deliver to subscribers while inside (the worker does this for its whole run); on the way out, what is
        still in the mailboxes gets up to `grace` seconds to be delivered."""
        if self._delivering is not None:
            yield  # delivering already (an application running the worker inside its own `delivering()`)
            return
        async with anyio.create_task_group() as tasks:
            with self._lock:  # a subscription made meanwhile is started either here or by subscribe(), never twice
                self._delivering = (tasks, anyio.lowlevel.current_token(), threading.get_ident())
                for subscription in self._subscriptions:
                    tasks.start_soon(subscription.deliver)
            try:
                yield
                with anyio.move_on_after(grace):
                    while any(subscription.pending for subscription in self.subscriptions):
                        await anyio.sleep(0.01)
            finally:
                with self._lock:
                    self._delivering = None
                tasks.cancel_scope.cancel()

    @property
    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions)


def _start(subscription: Subscription, tasks: anyio.abc.TaskGroup, loop: EventLoopToken, loop_thread: int) -> None:
    """Start `subscription`'s delivery in the task group of the bus's event loop, from whichever thread subscribed
    (a task group is not thread-safe: another thread asks the loop to start it, and waits until it has)."""
    if threading.get_ident() == loop_thread:
        tasks.start_soon(subscription.deliver)
        return
    with contextlib.suppress(RuntimeError):  # delivering ended meanwhile: the next delivering() starts it
        anyio.from_thread.run_sync(tasks.start_soon, subscription.deliver, token=loop)


def event_types(pattern: EventType | str) -> frozenset[EventType]:
    """The event types a pattern names; one that names none is an error listing the known names."""
    if isinstance(pattern, EventType):
        return frozenset((pattern,))
    if not isinstance(pattern, str):
        raise EventSubscriptionError(f"subscribe to an EventType, an event name or a pattern, not "
                                     f"{type(pattern).__name__}")
    matched = frozenset(event_type for event_type in CATALOGUE if fnmatch.fnmatchcase(event_type.value, pattern))
    if not matched:
        raise EventSubscriptionError(f"{pattern!r} matches no event; events are {', '.join(CATALOGUE)} "
                                     "(patterns such as 'job.*' match several)")
    return matched


def _name_of(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__qualname__


