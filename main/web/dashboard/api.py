"""The JSON API, under /api. Reads are GETs; actions are POSTs (see security.py for what they must carry).

    GET  /api/overview                      counts by status, queues, live workers, throughput of the last hour
    GET  /api/queues                        each queue's jobs by status, and whether it is paused
    GET  /api/jobs?status=&queue=&type=&scheduled=1&before=&limit=   a page of jobs; `next_before` for the next
    GET  /api/jobs/{id}                     everything about a job: payload, error and traceback, progress, result
    GET  /api/workers                       the live workers
    GET  /api/workflows?status=&limit=      workflow runs, newest first, with their steps by status
    GET  /api/workflows/{id}                a run: each step with what it waits for, state, attempts, result or error
    GET  /api/batches?status=&limit=        batches, newest first, with their jobs by status
    GET  /api/batches/{id}                  a batch: its status, counts, callbacks and jobs
    POST /api/jobs/{id}/retry | /cancel     one job
    POST /api/jobs/retry | /cancel          every job the filter (same parameters as the listing) selects
    POST /api/queues/{name}/pause | /resume
"""

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from main.web.dashboard.security import Security
from main.web.dashboard.views import JobQuery, Views


class Document(JSONResponse):
    """JSON with times as ISO 8601 text."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_iso, ensure_ascii=False, separators=(",", ":")).encode()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def api_routes(views: Views, security: Security) -> list[Route]:
    def read(answer: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Document]]:
        async def endpoint(request: Request) -> Document:
            return Document(await answer(request))

        return endpoint

    def act(action: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Document]]:
        async def endpoint(request: Request) -> Document:
            if refusal := security.action_refusal(request, None):
                return Document({"error": refusal}, status_code=403)
            return Document(await action(request))

        return endpoint

    def job_id(request: Request) -> int:
        return int(request.path_params["job_id"])

    return [
        Route("/api/overview", read(lambda r: views.overview())),
        Route("/api/queues", read(lambda r: views.queues())),
        Route("/api/jobs", read(lambda r: views.jobs(JobQuery.parse(r.query_params)))),
        Route("/api/jobs/{job_id:int}", read(lambda r: views.job(job_id(r)))),
        Route("/api/workers", read(lambda r: views.workers())),
        Route("/api/workflows", read(lambda r: views.workflows(r.query_params))),
        Route("/api/workflows/{run_id:int}", read(lambda r: views.workflow(int(r.path_params["run_id"])))),
        Route("/api/batches", read(lambda r: views.batches(r.query_params))),
        Route("/api/batches/{batch_id:int}", read(lambda r: views.batch(int(r.path_params["batch_id"])))),
        Route("/api/jobs/{job_id:int}/retry", act(lambda r: views.retry(job_id(r))), methods=["POST"]),
        Route("/api/jobs/{job_id:int}/cancel", act(lambda r: views.cancel(job_id(r))), methods=["POST"]),
        Route("/api/jobs/retry", act(lambda r: views.retry_matching(JobQuery.parse(r.query_params))),
              methods=["POST"]),
        Route("/api/jobs/cancel", act(lambda r: views.cancel_matching(JobQuery.parse(r.query_params))),
              methods=["POST"]),
        Route("/api/queues/{name}/pause", act(lambda r: views.pause(r.path_params["name"])), methods=["POST"]),
        Route("/api/queues/{name}/resume", act(lambda r: views.resume(r.path_params["name"])), methods=["POST"]),
    ]
