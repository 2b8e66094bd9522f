"""Health and judge discovery."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import DatabaseDep, LabelerDep
from app.api.schemas import HealthOut, JudgesOut, NamedJudgeOut
from judges.jury import PairJudgeConfig

health_router = APIRouter(tags=["meta"])
judges_router = APIRouter(prefix="/v1/judges", tags=["judges"])


@health_router.get("/healthz", response_model=HealthOut)
async def healthz(db: DatabaseDep) -> HealthOut:
    """Liveness and database reachability. Never needs an API key."""
    await db.ping()
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
