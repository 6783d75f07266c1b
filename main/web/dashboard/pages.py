"""The pages: server-rendered (Jinja2, every value escaped), one small vendored script that refreshes the
progress of running jobs. Actions are forms that POST with the CSRF token and come back to the page."""

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from main.db.entities import JobStatus
from main.errors import JobQueueError
from main.web.dashboard.security import SESSION_COOKIE, Security
from main.web.dashboard.views import THROUGHPUT_MINUTES, JobQuery, Views

TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
TEMPLATES.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
# The listing's tabs: (label, query parameters).
TABS: tuple[tuple[str, dict[str, str]], ...] = (
    ("running", {"status": "running"}), ("pending", {"status": "pending"}), ("scheduled", {"scheduled": "1"}),
    ("failed", {"status": "failed"}), ("completed", {"status": "completed"}), ("cancelled", {"status": "cancelled"}),
    ("all", {}))


def base_of(request: Request) -> str:
    """Where the dashboard is mounted ("" at the root): every link, form and cookie path starts with it."""
    return str(request.scope.get("root_path", ""))


def render(request: Request, security: Security, template: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        base=base_of(request), csrf=security.csrf_token, read_only=security.read_only,
        path=request.url.path + (f"?{request.url.query}" if request.url.query else ""), **context)
    return HTMLResponse(html, status_code=status_code)


def page_routes(views: Views, security: Security) -> list[Route]:
    def render_page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return render(request, security, template, status_code, **context)

    async def overview(request: Request) -> Response:
        data = await views.overview()
        return render_page(request, "overview.html", **data, chart=throughput_chart(data["throughput"], data["now"]))

    async def queues(request: Request) -> Response:
        return render_page(request, "queues.html", queues=await views.queues(), statuses=[s.value for s in JobStatus])

    async def jobs(request: Request) -> Response:
        query = JobQuery.parse(request.query_params)
        page = await views.jobs(query)
        tab = "scheduled" if query.scheduled else query.status.value if query.status else "all"
        return render_page(request, "jobs.html", **page, query=query, tab=tab, tabs=TABS)

    async def job(request: Request) -> Response:
        return render_page(request, "job.html", job=await views.job(int(request.path_params["job_id"])))

    async def workflows(request: Request) -> Response:
        return render_page(request, "workflows.html", runs=await views.workflows(request.query_params),
                           status=request.query_params.get("status"))

    async def workflow(request: Request) -> Response:
        return render_page(request, "workflow.html", run=await views.workflow(int(request.path_params["run_id"])))

    async def workers(request: Request) -> Response:
        return render_page(request, "workers.html", workers=await views.workers())

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return render_page(request, "login.html", failed=False)
        form = await request.form()
        given = form.get("token")
        if not security.token_matches(given if isinstance(given, str) else None):
            return render_page(request, "login.html", status_code=401, failed=True)
        response = RedirectResponse(f"{base_of(request)}/", status_code=303)
        response.set_cookie(SESSION_COOKIE, security.session_value, httponly=True, samesite="strict",
                            path=f"{base_of(request)}/")
        return response

    def act(action: Callable[[Request, Any], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            csrf = form.get("csrf")
            if refusal := security.action_refusal(request, csrf if isinstance(csrf, str) else None):
                return render_page(request, "error.html", status_code=403, message=refusal)
            try:
                await action(request, form)
            except JobQueueError as error:
                return render_page(request, "error.html", status_code=409, message=str(error))
            back = form.get("next")
            base = base_of(request)
            target = back if isinstance(back, str) and back.startswith("/") and not back.startswith("//") else "/"
            return RedirectResponse(target if target.startswith(base) else base + target, status_code=303)

        return endpoint

    def job_id(request: Request) -> int:
        return int(request.path_params["job_id"])

    return [
        Route("/", overview),
        Route("/queues", queues),
        Route("/jobs", jobs),
        Route("/jobs/{job_id:int}", job),
        Route("/workers", workers),
        Route("/workflows", workflows),
        Route("/workflows/{run_id:int}", workflow),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/jobs/{job_id:int}/retry", act(lambda r, f: views.retry(job_id(r))), methods=["POST"]),
        Route("/jobs/{job_id:int}/cancel", act(lambda r, f: views.cancel(job_id(r))), methods=["POST"]),
        Route("/jobs/retry", act(lambda r, f: views.retry_matching(JobQuery.parse(f))), methods=["POST"]),
        Route("/jobs/cancel", act(lambda r, f: views.cancel_matching(JobQuery.parse(f))), methods=["POST"]),
        Route("/queues/{name}/pause", act(lambda r, f: views.pause(r.path_params["name"])), methods=["POST"]),
        Route("/queues/{name}/resume", act(lambda r, f: views.resume(r.path_params["name"])), methods=["POST"]),
    ]


def throughput_chart(rows: list[dict[str, Any]], now: datetime, height: int = 80) -> dict[str, Any]:
    """Bars of completed and failed jobs per minute over the last hour (UTC), as SVG coordinates (no script, no
    CSS: the page's Content-Security-Policy allows neither inline)."""
    minutes = [(now - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M") for n in range(THROUGHPUT_MINUTES - 1, -1, -1)]
    per_minute = {minute: {"completed": 0, "failed": 0} for minute in minutes}
    for row in rows:
        if row["minute"] in per_minute and row["status"] in per_minute[row["minute"]]:
            per_minute[row["minute"]][row["status"]] += row["count"]
    peak = max([c["completed"] + c["failed"] for c in per_minute.values()] + [1])
    bars: list[dict[str, Any]] = []
    for x, (minute, counts) in enumerate(per_minute.items()):
        done, failed = (round(counts[k] / peak * height) for k in ("completed", "failed"))
        bars.append({"x": x * 10, "minute": minute[11:], "completed": counts["completed"], "failed": counts["failed"],
                     "done_y": height - done, "done_h": done, "failed_y": height - done - failed, "failed_h": failed})
    total = sum(counts["completed"] + counts["failed"] for counts in per_minute.values())
    return {"bars": bars, "peak": peak, "height": height, "total": total}
