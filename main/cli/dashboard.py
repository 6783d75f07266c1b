"""`jobqueue dashboard`: the web dashboard and its JSON API, served by uvicorn."""

import signal
from typing import Annotated

import anyio
import typer

from main.cli import JobsModule, app, open_queue
from main.errors import SettingsError
from main.web.dashboard import dashboard_app
from main.web.dashboard.security import is_loopback
from main.web.server import serving


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs "
                                           "JOBQUEUE_DASHBOARD_TOKEN")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one)")] = 8900,
    read_only: Annotated[bool, typer.Option("--read-only", help="No actions, for viewers "
                                                                "[env JOBQUEUE_DASHBOARD_READ_ONLY]")] = False,
    jobs_module: JobsModule = None,
) -> None:
    """Serve the dashboard until Ctrl-C: queues, running jobs with live progress, failures with retry."""
    queue = open_queue(jobs_module, dashboard_read_only=read_only or None)
    if queue.settings.dashboard_token is None and not is_loopback(host):
        raise SettingsError(f"refusing to serve the dashboard on {host} without JOBQUEUE_DASHBOARD_TOKEN: anyone "
                            "who reaches it could retry and cancel jobs; set a token, or keep --host 127.0.0.1")
    app_ = dashboard_app(queue)

    async def serve() -> None:
        async with serving(app_, host, port) as bound:
            queue.log.info("dashboard_serving", url=f"http://{host}:{bound}/",
                           read_only=queue.settings.dashboard_read_only,
                           token_required=queue.settings.dashboard_token is not None)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    return

    anyio.run(serve)
