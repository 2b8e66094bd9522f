"""Queries for production feedback. None of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.db import insert_for
from app.store.models import Base, Feedback, utcnow

_FEEDBACK = Base.metadata.tables["feedback"]


@dataclass(frozen=True, slots=True)
class InsertOutcome:
    id: uuid.UUID
    inserted: bool
    """False: the key was stored before (or earlier in the same call)."""
    conflict: bool
    """True: the key was stored before with a different body; nothing was written."""


async def insert_many(session: AsyncSession, rows: list[dict[str, Any]]) -> list[InsertOutcome]:
    """Insert rows whose idempotency key is new; one outcome per row, in order.

    One ``INSERT … ON CONFLICT DO NOTHING`` for the whole list, then one
    look-up of the keys that already existed: two statements per call,
    whatever the number of rows.
    """
    now = utcnow()
    first_by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        first_by_key.setdefault(
            row["idempotency_key"], {**row, "id": uuid.uuid4(), "created_at": now}
        )
    fresh = list(first_by_key.values())
    result = await session.execute(
        insert_for(session)(_FEEDBACK)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_FEEDBACK.c.idempotency_key),
        [{_column(key): value for key, value in row.items()} for row in fresh],
    )
    inserted_keys = set(result.scalars())
    stored = await _stored(
        session, [r["idempotency_key"] for r in fresh if r["idempotency_key"] not in inserted_keys]
    )
    outcomes = []
    claimed: set[str] = set()
    for row in rows:
        key = row["idempotency_key"]
        if key in inserted_keys and key not in claimed:
            claimed.add(key)
            outcomes.append(InsertOutcome(first_by_key[key]["id"], inserted=True, conflict=False))
            continue
        stored_id, stored_hash = stored.get(key) or (
            first_by_key[key]["id"],
            first_by_key[key]["body_hash"],
        )
        outcomes.append(
            InsertOutcome(stored_id, inserted=False, conflict=stored_hash != row["body_hash"])
        )
    return outcomes


def _column(attribute: str) -> str:
    # The ORM attribute ``meta`` is the column ``metadata`` (a reserved name on models).
    return "metadata" if attribute == "meta" else attribute


async def _stored(session: AsyncSession, keys: list[str]) -> dict[str, tuple[uuid.UUID, str]]:
    if not keys:
        return {}
    result = await session.execute(
        select(Feedback.idempotency_key, Feedback.id, Feedback.body_hash).where(
            Feedback.idempotency_key.in_(keys)
        )
    )
    return {key: (row_id, body_hash) for key, row_id, body_hash in result.all()}


async def get(session: AsyncSession, feedback_id: uuid.UUID) -> Feedback | None:
    found: Feedback | None = await session.get(Feedback, feedback_id)
    return found
