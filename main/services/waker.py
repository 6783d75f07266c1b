"""Wakes the worker loop before its poll interval is up: an enqueue in this process, a NOTIFY from another,
a job that finished (a slot is free), or a stop request. Safe to call from any thread."""

import contextlib
import threading

import anyio
import anyio.from_thread
import anyio.lowlevel


class Waker:
    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None

    def bind(self) -> None:
        """Attach to the running event loop (the worker's)."""
        self._event = anyio.Event()
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()

    def unbind(self) -> None:
        self._event = self._token = self._loop_thread = None

    def wake(self) -> None:
        if self._token is None:
            return  # no worker loop in this process: nothing to wake
        if threading.get_ident() == self._loop_thread:
            self._set()
            return
        with contextlib.suppress(RuntimeError):  # the loop has just finished: there is no one left to wake
            anyio.from_thread.run_sync(self._set, token=self._token)

    async def wait(self, timeout: float) -> None:
        """Return after `timeout` seconds or at the first wake-up, whichever comes first."""
        assert self._event is not None, "Waker.wait() before bind()"
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()

    def _set(self) -> None:
        if self._event is not None:
            self._event.set()
