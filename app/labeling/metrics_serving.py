"""Metrics of a CLI process (``--metrics-port``), and the one figure read from the database.

The pending pairs per judge are read when Prometheus scrapes, through a
small engine of their own, so a scrape never waits for a connection of the
work it watches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from app.labeling.pricing import is_priced
from app.labeling.runtime import build_registry
from app.observability import metrics
from app.observability.exposition import Exposition
from app.settings import Settings
from app.store import batches
from app.store.db import Database

T = TypeVar("T")


def pending_pairs(db: Database) -> Callable[[], Awaitable[Mapping[str, int]]]:
    """A reader of the queue depth per judge label, for ``referee_pending_pairs``."""

    async def read() -> Mapping[str, int]:
        async with db.transaction() as session:
            return await batches.pending_by_judge(session)

    return read


@asynccontextmanager
async def metrics_served(
    settings: Settings, port: int | None, policy: str | None = None
) -> AsyncIterator[None]:
    """Serve the metrics on ``port`` (REFEREE_METRICS_HOST) while the block runs; None: not.

    ``policy``: the ``provider:model`` the operator samples from on the command line,
    whose model then keeps its name in the labels (a vLLM checkpoint is in no price table).
    """
    if port is None:
        yield
        return
    # Known names before the first scrape, which may come before the work's runtime is up.
    metrics.configure(build_registry(settings), settings.resolved_default_judge(), is_priced)
    if policy is not None:
        provider, _, model = policy.partition(":")
        metrics.VOCABULARY.learn_model(provider, model)
    db = Database(settings.database_url, pool_size=1)
    exposition = Exposition(pending_pairs(db), asyncio.get_running_loop())
    exposition.serve(settings.metrics_host, port)
    try:
        yield
    finally:
        await exposition.aclose()
        await db.dispose()


async def observed(
    settings: Settings,
    port: int | None,
    work: Coroutine[Any, Any, T],
    *,
    policy: str | None = None,
) -> T:
    """Run ``work`` with the metrics served on ``port`` (the CLI's ``--metrics-port``)."""
    async with metrics_served(settings, port, policy):
        return await work
