"""Serving an ASGI app (the probes and metrics, the dashboard) inside a process that owns its signals: uvicorn
runs on an event loop of its own, in a thread of the caller's task group, so that it answers even while a job
blocks the worker's loop (a liveness probe must say so, not time out); on a socket bound before it starts (a
port in use fails at once, with its number; port 0 picks a free one); logging nothing to stdout."""

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
import anyio.to_thread
import uvicorn
from anyio import CapacityLimiter
from starlette.types import ASGIApp

from main.errors import JobQueueError


@asynccontextmanager
async def serving(app: ASGIApp, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` on host:port while inside; yields the port bound."""
    sock = bind(host, port)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)  # off the main thread it leaves the signals to the worker (or supervisor)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(partial(anyio.to_thread.run_sync, server.run, [sock], limiter=CapacityLimiter(1)))
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True  # it looks every 0.1 s, then the thread ends


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise JobQueueError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another port)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
