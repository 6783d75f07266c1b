"""The worker's HTTP port (`jobqueue worker --metrics-port`): /metrics for Prometheus, /healthz and /readyz for
container probes. Each answer is computed in a thread: reading the queues and the schema are database calls."""

from collections.abc import Callable

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from main.metrics.health import Verdict


def probe_app(registry: CollectorRegistry, health: Callable[[], Verdict], ready: Callable[[], Verdict]) -> Starlette:
    async def metrics(request: Request) -> Response:
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def verdict(check: Callable[[], Verdict]) -> Callable[[Request], object]:
        async def answer(request: Request) -> JSONResponse:
            found = await anyio.to_thread.run_sync(check)
            return JSONResponse(found.document(), status_code=200 if found.ok else 503)

        return answer

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", verdict(health)),
                             Route("/readyz", verdict(ready))])
