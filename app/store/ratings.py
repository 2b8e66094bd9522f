"""Queries for single-response ratings and their judge calls. None of them commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store import db
from app.store.models import JudgeCall, Rating, utcnow


async def get(session: AsyncSession, rating_id: uuid.UUID) -> Rating | None:
    return await _one(session, Rating.id == rating_id)


async def get_by_label_key(session: AsyncSession, label_key: str) -> Rating | None:
    return await _one(session, Rating.label_key == label_key)


async def _one(session: AsyncSession, condition: ColumnElement[bool]) -> Rating | None:
    statement = select(Rating).where(condition).options(selectinload(Rating.calls))
    found: Rating | None = (await session.execute(statement)).scalar_one_or_none()
    return found


async def insert_if_absent(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Insert a rating unless its label key exists; return the id either way."""
    return await db.insert_if_absent(session, Rating, values)


async def lock_status(session: AsyncSession, rating_id: uuid.UUID) -> str:
    """The rating's status, its row locked for the rest of the transaction."""
    return await db.lock_status(session, Rating, rating_id)


async def write_result(
    session: AsyncSession,
    rating_id: uuid.UUID,
    calls: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    """Store a judging run's calls and its outcome (score, or failure status)."""
    now = utcnow()
    if calls:
        await session.execute(
            insert(JudgeCall),
            [{**call, "rating_id": rating_id, "created_at": now} for call in calls],
        )
    await session.execute(
        update(Rating).where(Rating.id == rating_id).values(**result, updated_at=now)
    )
