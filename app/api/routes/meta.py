"""Health and judge discovery."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import DatabaseDep, LabelerDep
from app.api.errors import error_response, error_responses
from app.api.schemas import HealthOut, JudgesOut, NamedJudgeOut
from judges.jury import PairJudgeConfig

logger = logging.getLogger("referee.api")
health_router = APIRouter(tags=["meta"])
judges_router = APIRouter(prefix="/v1/judges", tags=["judges"])


@health_router.get(
    "/healthz",
    response_model=HealthOut,
    responses=error_responses(503, e503="The database does not answer."),
)
async def healthz(db: DatabaseDep) -> HealthOut | JSONResponse:
    """Liveness and database reachability. Never needs an API key."""
    try:
        await db.ping()
    except Exception as exc:
        # Whatever stops the round trip (driver, network, pool), the answer to the
        # monitor is the same 503; the log says which.
        logger.warning("health check: the database does not answer", exc_info=exc)
        return error_response(503, "database_unavailable", "the database does not answer")
    return HealthOut(status="ok", database="ok")


@judges_router.get("", response_model=JudgesOut)
async def list_judges(labeler: LabelerDep) -> JudgesOut:
    """Registered providers, named judges and juries from the config file, and the default."""
    configs: dict[str, PairJudgeConfig] = {**labeler.registry.named, **labeler.registry.juries}
    named = [
        NamedJudgeOut(name=name, spec=config.spec, options=config.parameters())
        for name, config in sorted(configs.items())
    ]
    return JudgesOut(
        providers=labeler.registry.providers,
        named=named,
        default=labeler.settings.resolved_default_judge(),
    )
