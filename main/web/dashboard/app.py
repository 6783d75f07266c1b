"""The dashboard as an ASGI app: `jobqueue dashboard` serves it, and an application can mount it in its own.

    from main.web.dashboard import dashboard_app
    app.mount("/jobs", dashboard_app(get_job_queue()))      # Starlette or FastAPI
"""

from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from main.errors import InvalidJobStateError, JobNotFoundError, JobQueueError
from main.services.job_queue import JobQueue
from main.web.dashboard.api import Document, api_routes
from main.web.dashboard.pages import base_of, page_routes, render
from main.web.dashboard.security import Security
from main.web.dashboard.views import Views

# Scripts and styles only from the dashboard's own files: an escaping mistake could not run a script either.
HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "cache-control": "no-store"}


def dashboard_app(queue: JobQueue, *, token: str | None = None, read_only: bool | None = None) -> Starlette:
    """`token` and `read_only` default to JOBQUEUE_DASHBOARD_TOKEN and JOBQUEUE_DASHBOARD_READ_ONLY."""
    settings = queue.settings
    configured = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    security = Security(token if token is not None else configured,
                        settings.dashboard_read_only if read_only is None else read_only)
    views = Views(queue)
    static = StaticFiles(directory=Path(__file__).parent / "static")
    return Starlette(
        routes=[*api_routes(views, security), *page_routes(views, security), Mount("/static", static)],
        middleware=[Middleware(_Guard, security=security)],
        exception_handlers={JobQueueError: partial(_error, security)},
    )


class _Guard:
    """Every request: signed in (when a token is set), and answered with the security headers."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app, self.security = app, security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        root = base_of(request)
        path = scope["path"].removeprefix(root)
        if not self.security.may_read(request) and path != "/login" and not path.startswith("/static/"):
            response: Response = (
                Document({"error": "sign in: send Authorization: Bearer <token>"}, status_code=401)
                if path.startswith("/api/") else RedirectResponse(f"{root}/login", status_code=303))
            await response(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _error(security: Security, request: Request, error: Exception) -> Response:
    """A job that does not exist, an action its state refuses, a bad parameter: said in JSON or on a page."""
    status = 404 if isinstance(error, JobNotFoundError) else 409 if isinstance(error, InvalidJobStateError) else 400
    if request.url.path.startswith(f"{base_of(request)}/api/"):
        return Document({"error": str(error)}, status_code=status)
    return render(request, security, "error.html", status, message=str(error))
