"""Health and judge discovery."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import DatabaseDep, LabelerDep
from app.api.schemas import HealthOut, JudgesOut, NamedJudgeOut

health_router = APIRouter(tags=["meta"])
judges_router = APIRouter(prefix="/v1/judges", tags=["judges"])


@health_router.get("/healthz", response_model=HealthOut)
async def healthz(db: DatabaseDep) -> HealthOut:
    """Liveness and database reachability. Never needs an API key."""
    await db.ping()
    return HealthOut(status="ok", database="ok")


@judges_router.get("", response_model=JudgesOut)
async def list_judges(labeler: LabelerDep) -> JudgesOut:
    """Registered providers, named judges from the config file, and the default judge."""
    named = [
        NamedJudgeOut(name=name, spec=config.spec, options=config.parameters())
        for name, config in sorted(labeler.registry.named.items())
    ]
    return JudgesOut(
        providers=labeler.registry.providers, named=named, default=labeler.settings.default_judge
    )
