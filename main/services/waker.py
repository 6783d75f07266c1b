"""Wakes a task of the event loop before its timeout is up, from any thread, without waiting for the loop:
the worker loop (an enqueue in this process, a NOTIFY from another, a job that finished, a stop request) and
the delivery of events to subscribers. It also keeps alarms: the times at which jobs announced for later
become due, so that they start then and not at the next poll."""

import bisect
import contextlib
import math
import threading
import time

import anyio
import anyio.lowlevel

MAX_ALARMS = 1000  # the earliest are kept; jobs due after the rest are found by the poll, as without alarms
# Due times are read from the database's clock, the wait from the event loop's: wake this much after, so that
# the claim finds the job due.
LATE = 0.002


class Waker:
    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None
        self._alarms: list[float] = []  # time.monotonic() values, earliest first
        self._waiting_until = math.inf
        self._lock = threading.Lock()

    def bind(self) -> None:
        """Attach to the running event loop."""
        self._event = anyio.Event()
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()

    def unbind(self) -> None:
        self._event = self._token = self._loop_thread = None

    def wake(self) -> None:
        token = self._token
        if token is None:
            return  # no loop bound in this process: nothing to wake
        if threading.get_ident() == self._loop_thread:
            self._set()
            return
        native = token.native_token  # asyncio's loop, or trio's token: both schedule a call without waiting
        schedule = getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon  # type: ignore[attr-defined]
        with contextlib.suppress(RuntimeError):  # the loop has just finished: there is no one left to wake
            schedule(self._set)

    def wake_in(self, seconds: float) -> None:
        """Wake in `seconds` (when a job announced for later becomes due), or now if that is not in the future."""
        if seconds <= 0:
            self.wake()
            return
        at = time.monotonic() + seconds + LATE
        with self._lock:
            bisect.insort(self._alarms, at)
            del self._alarms[MAX_ALARMS:]
            sooner = at < self._waiting_until
        if sooner:  # the wait under way would end after it: end it now, the next one ends in time
            self.wake()

    async def wait(self, timeout: float = math.inf) -> None:
        """Return after `timeout` seconds, at the first wake-up or at the next alarm, whichever comes first; at
        once if an alarm went off since the last wait (the caller looks after it, never before it)."""
        assert self._event is not None, "Waker.wait() before bind()"
        with self._lock:
            now = time.monotonic()
            passed = bisect.bisect_right(self._alarms, now)
            del self._alarms[:passed]
            if passed:
                return
            if self._alarms:
                timeout = min(timeout, self._alarms[0] - now)
            self._waiting_until = now + timeout
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._waiting_until = math.inf
        self._event = anyio.Event()

    def _set(self) -> None:
        if self._event is not None:
            self._event.set()
