"""The composition root: engine, judge registry and labeler, built at start-up.

The FastAPI lifespan and each CLI command enter :func:`runtime`; nothing is
built at import.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import SchemaOutdatedError
from app.labeling.compare import Labeler
from app.labeling.fleet_limits import shared_limits
from app.labeling.pricing import is_priced
from app.observability import metrics
from app.settings import Settings
from app.store import migrate
from app.store.db import Database
from judges import JudgeRegistry, load_named_judges
from judges.jury import load_juries
from judges.templates import use_template_folders

log = logging.getLogger("referee")


def build_registry(settings: Settings) -> JudgeRegistry:
    use_template_folders(settings.template_folders())  # named judges name templates
    path = settings.resolved_judges_file()
    named = load_named_judges(path) if path is not None else {}
    registry = JudgeRegistry.from_entry_points(named, cache_size=settings.judge_cache_size)
    for jury in (load_juries(path, named) if path is not None else {}).values():
        registry.add_jury(jury)
    return registry


async def ensure_schema(settings: Settings) -> None:
    """Refuse an outdated schema, or upgrade it when REFEREE_AUTO_MIGRATE is set."""
    url = settings.database_url
    if await asyncio.to_thread(migrate.is_up_to_date, url):
        return
    if settings.auto_migrate:
        log.info("upgrading the database schema")
        await asyncio.to_thread(migrate.upgrade, url)
        return
    raise SchemaOutdatedError(
        "the database schema is not up to date: run `referee db upgrade` "
        "(or set REFEREE_AUTO_MIGRATE=1)"
    )


@asynccontextmanager
async def runtime(
    settings: Settings, registry: JudgeRegistry | None = None
) -> AsyncIterator[Labeler]:
    """A labeler over a checked database and a judge registry; closed on exit."""
    await ensure_schema(settings)
    use_template_folders(settings.template_folders())
    db = Database(settings.database_url, pool_size=settings.db_pool_size, echo=settings.db_echo)
    judges = registry or build_registry(settings)
    metrics.configure(judges, settings.resolved_default_judge(), is_priced)
    labeler = Labeler(db, judges, settings)
    try:
        # --rpm/--tpm: one budget with every other process on the judge (Redis or PostgreSQL).
        async with shared_limits(settings, db, judges):
            try:
                yield labeler
            finally:
                # Shared judgments whose callers all left still store what they paid for.
                await labeler.flights.wait_idle()
                await judges.aclose()
    finally:
        await db.dispose()
