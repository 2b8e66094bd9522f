"""The FastAPI application: engine, judges and labeler built in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app.api import errors, metrics, review_page
from app.api.deps import require_access
from app.api.limits import BodyLimitMiddleware, body_limits
from app.api.routes import (
    batches,
    comparisons,
    constitutions,
    exports,
    feedback,
    generations,
    meta,
    ratings,
    reports,
    review_queue,
    review_queues,
    revisions,
    rewards,
    rounds,
    templates,
)
from app.api.schemas import ErrorOut
from app.api.telemetry import FASTAPI_TELEMETRY
from app.labeling.heap import serving_collector
from app.labeling.limits import RequestLimits
from app.labeling.metrics_serving import pending_pairs
from app.labeling.runtime import runtime
from app.labeling.worker import BackgroundWorkers, WorkerOptions
from app.observability.exposition import Exposition
from app.observability.logs import RequestLogMiddleware, configure_structlog
from app.observability.tracing import configure_tracing, flush
from app.settings import Settings
from judges import JudgeRegistry

_UNAUTHORIZED: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Missing, unknown or revoked API key."},
    403: {"model": ErrorOut, "description": "The API key lacks the scope this route needs."},
    429: {"model": ErrorOut, "description": "The API key's daily budget is spent (Retry-After)."},
}


def create_app(settings: Settings | None = None, registry: JudgeRegistry | None = None) -> FastAPI:
    """Build the app. ``registry`` lets tests plug in fake judges through the real registry."""
    settings = settings or Settings()
    configure_tracing()  # only when OTEL_* variables ask for traces
    configure_structlog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime(settings, registry) as labeler:
            # Requests come from clients: bounded, and no ad-hoc in-process judges.
            labeler.limits = RequestLimits.for_clients(labeler.settings)
            app.state.labeler = labeler
            app.state.db = labeler.db
            app.state.workers = BackgroundWorkers(
                labeler, WorkerOptions(concurrency=labeler.settings.api_worker_concurrency)
            )
            app.state.metrics = Exposition(pending_pairs(labeler.db), asyncio.get_running_loop())
            metrics.serve_port(app.state.metrics, labeler.settings)
            try:
                with serving_collector():
                    yield
            finally:
                await app.state.metrics.aclose()
                await app.state.workers.aclose()
                flush()  # the spans still buffered: no exit hook runs after a SIGTERM

    app = FastAPI(
        title="Referee",
        version="0.1.0",
        summary="AI-feedback labeling: pairwise verdicts stored with provenance.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
    )
    errors.install(app)
    default_limit, upload_limits = body_limits(settings)
    app.add_middleware(BodyLimitMiddleware, default=default_limit, routes=upload_limits)
    app.add_middleware(RequestLogMiddleware)  # outermost of ours: it sees every request
    app.include_router(meta.health_router)
    metrics.install(app, settings.metrics_port is not None, [Depends(require_access)])
    # Each route's scope is its line in app.api.deps.ROUTE_ACCESS.
    protected = [Depends(require_access)]
    app.include_router(
        comparisons.router,
        dependencies=protected,
        responses=_UNAUTHORIZED,
    )
    app.include_router(meta.judges_router, dependencies=protected, responses=_UNAUTHORIZED)
    for router in (
        batches.router,
        ratings.router,
        revisions.router,
        constitutions.router,
        templates.router,
        feedback.router,
        exports.router,
        review_queue.router,
        review_queues.router,
        reports.router,
        reports.reviews_router,
        rewards.router,
        generations.router,
        rounds.router,
    ):
        app.include_router(router, dependencies=protected, responses=_UNAUTHORIZED)
    # /review signs people in itself (a session cookie); its scopes are in ROUTE_ACCESS too.
    review_page.install(app, settings)
    return app
