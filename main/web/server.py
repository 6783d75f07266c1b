"""Serving an ASGI app (the probes and metrics, the dashboard) inside a process that owns its signals: uvicorn
runs as a task of the caller's task group, on a socket bound before it starts (a port in use fails at once,
with its number; port 0 picks a free one), logging nothing to stdout."""

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from starlette.types import ASGIApp

from main.errors import JobQueueError


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the worker (or supervisor) handles SIGTERM/SIGINT and stops the server itself


@asynccontextmanager
async def serving(app: ASGIApp, host: str, port: int) -> AsyncIterator[int]:
    """Serve `app` on host:port while inside; yields the port bound."""
    sock = bind(host, port)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", log_level="warning")
    server = _Server(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True


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
