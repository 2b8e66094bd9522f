"""Queries for critique → revision runs, their rounds and calls. None of them commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store import db
from app.store.models import JudgeCall, Revision, RevisionRound, utcnow


async def get(session: AsyncSession, revision_id: uuid.UUID) -> Revision | None:
    return await _one(session, Revision.id == revision_id)


async def get_by_label_key(session: AsyncSession, label_key: str) -> Revision | None:
    return await _one(session, Revision.label_key == label_key)


async def _one(session: AsyncSession, condition: ColumnElement[bool]) -> Revision | None:
    statement = (
        select(Revision)
        .where(condition)
        .options(selectinload(Revision.rounds), selectinload(Revision.calls))
    )
    found: Revision | None = (await session.execute(statement)).scalar_one_or_none()
    return found


async def insert_if_absent(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Insert a revision run unless its label key exists; return the id either way."""
    return await db.insert_if_absent(session, Revision, values)


async def lock_status(session: AsyncSession, revision_id: uuid.UUID) -> str:
    """The run's status, its row locked for the rest of the transaction."""
    return await db.lock_status(session, Revision, revision_id)


async def write_result(
    session: AsyncSession,
    revision_id: uuid.UUID,
    calls: list[dict[str, Any]],
    rounds: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    """Store one run's calls, rounds and outcome; a re-run replaces no earlier row.

    Rounds of an earlier failed attempt stay (their calls were paid for);
    the run's status and final response say which attempt finished.
    """
    now = utcnow()
    if calls:
        rows = [{**call, "revision_id": revision_id, "created_at": now} for call in calls]
        await session.execute(insert(JudgeCall), rows)
    if rounds:
        rows = [{**r, "revision_id": revision_id, "created_at": now} for r in rounds]
        await session.execute(insert(RevisionRound), rows)
    await session.execute(
        update(Revision).where(Revision.id == revision_id).values(**result, updated_at=now)
    )
