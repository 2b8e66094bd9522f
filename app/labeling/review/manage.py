"""Queues as an operator sees them: made from a spec (CLI or HTTP), listed with progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFoundError
from app.labeling.review.create import QueueSpec, create_queue
from app.labeling.runtime import ensure_schema
from app.settings import Settings
from app.store import reports
from app.store import review_queues as store
from app.store.db import Database
from app.store.models_review import ReviewQueue


async def batch_id_of(session: AsyncSession, ref: str) -> Any:
    """A batch's id from its name or id; 404 naming ``batch`` when there is none."""
    found = await reports.find_batch(session, ref)
    if found is None:
        raise NotFoundError(f"no batch {ref!r} (give its name or id)", field="batch")
    return found.id


def describe(queue: ReviewQueue, counts: store.QueueCounts) -> dict[str, Any]:
    """A queue as JSON: what it holds and how far its reviewers are."""
    return {
        "id": str(queue.id),
        "name": queue.name,
        "kind": queue.kind,
        "batch_id": str(queue.batch_id) if queue.batch_id else None,
        "params": queue.params,
        "overlap": queue.overlap,
        "show_machine": queue.show_machine,
        "guidelines": queue.guidelines,
        "items": queue.items,
        "done": counts.done,
        "answers": counts.answers,
        "reviewers": counts.reviewers,
        "created_by": queue.created_by,
        "created_at": queue.created_at.isoformat(),
    }


async def overview(session: AsyncSession) -> list[dict[str, Any]]:
    """Every queue, oldest first, with its progress."""
    return [
        describe(queue, await store.counts(session, queue.id))
        for queue in await store.all_queues(session)
    ]


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    await ensure_schema(settings)
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        await db.dispose()


async def create_from_cli(
    settings: Settings, values: dict[str, Any], batch: str | None
) -> ReviewQueue:
    """``referee review-queue create``: the batch by name or id, then the queue, one transaction."""
    async with _database(settings) as db, db.transaction() as session:
        batch_id = await batch_id_of(session, batch) if batch is not None else None
        spec = QueueSpec(**values, batch_id=batch_id)
        return await create_queue(
            session, spec, created_by="cli", max_items=settings.max_queue_items
        )


async def overview_from_cli(settings: Settings) -> list[dict[str, Any]]:
    async with _database(settings) as db, db.transaction() as session:
        return await overview(session)
