"""Queries for gold labels: human preferences, stored apart from machine verdicts.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store import db, review_pending
from app.store.models import Base, GoldLabel

_GOLD = Base.metadata.tables["gold_labels"]


async def insert_imports(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert imported gold labels, skipping those already stored; return how many are new.

    Rows must all have the same keys. The dedupe key makes importing the
    same file twice (or labeling it again to resume) add nothing.
    """
    if not rows:
        return 0
    keys = [row["dedupe_key"] for row in rows]
    known = set(
        (
            await session.scalars(
                select(GoldLabel.dedupe_key).where(GoldLabel.dedupe_key.in_(keys))
            )
        ).all()
    )
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:  # the first of repeated rows is the one kept
        if row["dedupe_key"] not in known:
            fresh.setdefault(row["dedupe_key"], row)
    # ON CONFLICT DO NOTHING as well: a concurrent import of the same rows converges.
    await db.insert_many_ignoring(session, _GOLD, list(fresh.values()), "dedupe_key")
    # Their pairs leave the review queue's work list: by pair key, and by comparison for a row
    # that names one (imports do not today).
    await review_pending.pairs_reviewed(session, [row["pair_key"] for row in fresh.values()])
    for comparison_id in {row.get("comparison_id") for row in fresh.values()} - {None}:
        await review_pending.reviewed(session, comparison_id, None)
    return len(fresh)


async def add_review(session: AsyncSession, values: dict[str, Any]) -> GoldLabel:
    """Store one human review of a comparison and return it."""
    result = await session.execute(insert(GoldLabel).values(**values).returning(GoldLabel))
    review: GoldLabel = result.scalar_one()
    await review_pending.reviewed(session, review.comparison_id, review.pair_key)
    return review


async def winner_counts(session: AsyncSession) -> dict[str, int]:
    """How many gold labels of each winner are stored, all sources."""
    result = await session.execute(
        select(GoldLabel.winner, func.count()).group_by(GoldLabel.winner)
    )
    return {winner: count for winner, count in result.all()}
