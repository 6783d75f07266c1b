"""Wakes a task of the event loop before its timeout is up, from any thread, without waiting for the loop:
the worker loop (an enqueue in this process, a NOTIFY from another, a job that finished, a stop request) and
the delivery of events to subscribers."""

import contextlib
import math
import threading

import anyio
import anyio.lowlevel


class Waker:
    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None

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

    async def wait(self, timeout: float = math.inf) -> None:
        """Return after `timeout` seconds or at the first wake-up, whichever comes first."""
        assert self._event is not None, "Waker.wait() before bind()"
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()

    def _set(self) -> None:
        if self._event is not None:
            self._event.set()
