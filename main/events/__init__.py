"""Lifecycle events: the catalogue of what happens to jobs, workers and queues, and the bus that hands events
to subscribers. The core emits; everything that watches (logs, metrics, your handlers) subscribes."""

from main.events.bus import EventBus, Handler, Subscription
from main.events.catalogue import CATALOGUE, Event, EventType

__all__ = ["CATALOGUE", "Event", "EventBus", "EventType", "Handler", "Subscription"]
