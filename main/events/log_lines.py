"""The structured logs as a subscriber of the event catalogue: each event whose level the logger lets through
is one line, named like the event (`job.completed` -> `job_completed`) and carrying its fields. Types below the
log level are not attached at all, so they cost their emitters nothing."""

import logging
from functools import partial
from typing import Any

from structlog.typing import FilteringBoundLogger

from main.events.bus import EventBus
from main.events.catalogue import CATALOGUE, Event


def attach_log_lines(bus: EventBus, log: FilteringBoundLogger) -> None:
    for event_type, info in CATALOGUE.items():
        level = logging.getLevelNamesMapping()[info.level.upper()]
        enabled = getattr(log, "is_enabled_for", None)
        if enabled is None or enabled(level):
            bus.attach(event_type, partial(_write, getattr(log, info.level), event_type.log_name))


def _write(method: Any, name: str, event: Event) -> None:
    method(name, **{key: value for key, value in event.fields.items() if value is not None})
