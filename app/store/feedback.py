"""Queries for production feedback. None of them commits."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.db import insert_for, insert_many_ignoring
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

    Three statements per call, whatever the number of rows: look up the keys,
    insert the new ones (``ON CONFLICT DO NOTHING``, so a concurrent writer
    of the same key is not an error), and read back which ids hold them. A
    plain executemany without RETURNING is the fastest insert the drivers
    have; the read-back keeps the outcome exact even under such a race.
    """
    now = utcnow()
    keys = list(dict.fromkeys(row["idempotency_key"] for row in rows))
    before = await _stored(session, keys)
    # One read of the random source for all ids: uuid4() makes a system call each.
    random = os.urandom(16 * len(keys))
    ours: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["idempotency_key"]
        if key not in before and key not in ours:
            n = len(ours)
            row_id = uuid.UUID(bytes=random[16 * n : 16 * n + 16], version=4)
            ours[key] = {**row, "id": row_id, "created_at": now}
    if ours:
        values = [{_column(k): v for k, v in row.items()} for row in ours.values()]
        await insert_many_ignoring(session, _FEEDBACK, values, "idempotency_key")
        after = await _stored(session, list(ours))
    else:
        after = {}
    stored = {**before, **after}
    outcomes = []
    claimed: set[str] = set()
    for row in rows:
        key = row["idempotency_key"]
        stored_id, stored_hash = stored[key]
        mine = key in ours and ours[key]["id"] == stored_id and key not in claimed
        if mine:
            claimed.add(key)
            outcomes.append(InsertOutcome(stored_id, inserted=True, conflict=False))
        else:
            conflict = stored_hash != row["body_hash"]
            outcomes.append(InsertOutcome(stored_id, inserted=False, conflict=conflict))
    return outcomes


async def insert_one(session: AsyncSession, row: dict[str, Any]) -> tuple[Feedback, InsertOutcome]:
    """Insert one row unless its idempotency key is stored; the stored row and the outcome.

    One ``INSERT … ON CONFLICT DO NOTHING RETURNING`` round trip for a new
    key; a second query reads the stored row only for a duplicate.
    """
    values = {**row, "id": uuid.uuid4(), "created_at": utcnow()}
    statement = (
        insert_for(session)(Feedback)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Feedback)
    )
    inserted = (await session.scalars(statement)).one_or_none()
    if inserted is not None:
        return inserted, InsertOutcome(inserted.id, inserted=True, conflict=False)
    stored = (
        await session.scalars(
            select(Feedback).where(Feedback.idempotency_key == row["idempotency_key"])
        )
    ).one()
    conflict = stored.body_hash != row["body_hash"]
    return stored, InsertOutcome(stored.id, inserted=False, conflict=conflict)


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
