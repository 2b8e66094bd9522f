"""The API's metrics: a middleware counting requests, and the /metrics route.

/metrics is served on the API's port with a ``read`` key, unless
REFEREE_METRICS_PORT moves it to a port of its own (then the API's port has
no /metrics). It answers the Prometheus text format, not JSON, so it is
left out of the OpenAPI schema like the /review pages.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.params import Depends
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import metrics
from app.observability.exposition import CONTENT_TYPE, Exposition
from app.settings import Settings

log = logging.getLogger("referee.metrics")
router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    """Every referee_* metric in the Prometheus text format."""
    exposition: Exposition = request.app.state.metrics
    return Response(await exposition.render(), media_type=CONTENT_TYPE)


class RequestMetrics:
    """Counts each request by method, route template and status, and times it.

    Pure ASGI rather than BaseHTTPMiddleware, so streamed exports pass through
    untouched; the template is the route the router matched (the raw path
    would make a series per id), and no match at all is ``other``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None)
            metrics.count_request(scope["method"], template, status, time.perf_counter() - started)


def install(app: FastAPI, separate_port: bool, protected: list[Depends]) -> None:
    """Count every request; serve /metrics here (its scope in ROUTE_ACCESS) unless it has
    a port of its own."""
    app.add_middleware(RequestMetrics)
    if not separate_port:
        app.include_router(router, dependencies=protected)


def serve_port(exposition: Exposition, settings: Settings) -> None:
    """Serve the metrics on REFEREE_METRICS_PORT, when set.

    With several server processes (``referee serve --workers N``) each one
    tries; the first binds and serves every process's metrics (multiprocess
    mode), the others log that the port is taken and go on.
    """
    if settings.metrics_port is None:
        return
    try:
        exposition.serve(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        log.warning(
            "metrics port %s:%s not served by this process: %s",
            settings.metrics_host,
            settings.metrics_port,
            exc,
        )
