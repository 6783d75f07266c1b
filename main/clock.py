"""The time source, injected so that scheduling and backoff can be tested without sleeping, and corrected to
the database server's clock so that hosts whose clocks disagree still agree on what is due and which lease
has expired."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

RESYNC_SECONDS = 60.0  # how long a measured offset is trusted by a process that has no heartbeat to renew it


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to: for tests of backoff and scheduling arithmetic."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class ShiftedClock:
    """A machine's clock that is wrong by `seconds` (ahead if positive): what NTP trouble looks like."""

    def __init__(self, seconds: float, base: Clock | None = None) -> None:
        self.shift, self.base = timedelta(seconds=seconds), base or SystemClock()

    def now(self) -> datetime:
        return self.base.now() + self.shift


class TimeReading(NamedTuple):
    """The server's clock read once, between two readings of this machine's: the server's time fell in between."""

    sent: datetime
    server: datetime
    received: datetime


class ServerClock:
    """The database server's time, read through this machine's clock: `machine.now()` plus the offset measured
    at the last `sync`. Every decision about time (what is due, when a lease expires, when a retry runs) is then
    the same on every host of a fleet, however wrong their clocks are, to within half a round trip.

    `read_server_time` is given the machine's clock to read just around the query (connecting, checking a
    pooled connection and beginning a transaction must stay outside: they would make the server look ahead by
    half their time). It returns None where the database has no clock of its own (SQLite: a file on this
    machine), and the machine's clock is used as it is, without asking again. Reading is cheap and never
    touches the database; `sync` does, so it is called from threads: at a worker's start and at each beat of
    its heartbeat, and by `sync_if_stale` before the operations of processes that only enqueue."""

    def __init__(self, machine: Clock, read_server_time: Callable[[Clock], TimeReading | None],
                 on_skew: Callable[[float], None] = lambda seconds: None) -> None:
        self.machine, self._read_server_time, self._on_skew = machine, read_server_time, on_skew
        self.offset = timedelta(0)
        self._synced_at: float | None = None
        self._local_database = False
        self._latest = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Never earlier than a time it returned before: a new measure of the offset a few milliseconds smaller
        (round trips vary) must not make a job enqueued just before look due later."""
        now = self.machine.now() + self.offset
        with self._lock:
            if now > self._latest:
                self._latest = now
            return self._latest

    @property
    def stale(self) -> bool:
        """Whether the offset should be measured again before time is decided with it."""
        if self._local_database:
            return False
        return self._synced_at is None or time.monotonic() - self._synced_at > RESYNC_SECONDS

    def sync(self) -> None:
        """Measure the offset of this machine's clock from the server's (one round trip)."""
        reading = self._read_server_time(self.machine)
        if reading is None:
            self._local_database = True
            return
        offset = reading.server - (reading.sent + (reading.received - reading.sent) / 2)
        if abs((offset - self.offset).total_seconds()) >= 1.0:
            self._on_skew(offset.total_seconds())
        self.offset, self._synced_at = offset, time.monotonic()

    def sync_if_stale(self) -> None:
        if self.stale:
            self.sync()
