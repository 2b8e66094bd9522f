"""The review queue: pairs whose jury split, for humans to label.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store.comparisons import is_current_verdict
from app.store.models import Comparison, GoldLabel, Verdict


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """Which split jury verdicts go to human review."""

    min_disagreement: float
    judge: str | None = None
    batch_id: uuid.UUID | None = None
    include_reviewed: bool = False
    """False leaves out pairs a human already labeled (a review or an imported gold label)."""


def _reviewed() -> ColumnElement[bool]:
    # Two EXISTS, not one over an OR: SQLite answers an OR of two columns by
    # reading every gold label, per candidate (tests/test_query_plans.py).
    return or_(
        exists().where(GoldLabel.comparison_id == Comparison.id),
        exists().where(GoldLabel.pair_key == Comparison.pair_key),
    )


async def review_queue(
    session: AsyncSession, filters: QueueFilters, *, after: int | None, limit: int
) -> list[tuple[Comparison, Verdict]]:
    """Comparisons whose current verdict's disagreement is at least the threshold.

    Oldest verdict first, after a verdict-id cursor; each comparison comes
    with its votes loaded.
    """
    statement = (
        select(Comparison, Verdict)
        .join(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
        .where(Verdict.disagreement >= filters.min_disagreement)
    )
    if filters.judge is not None:
        statement = statement.where(Comparison.judge == filters.judge)
    if filters.batch_id is not None:
        statement = statement.where(Comparison.batch_id == filters.batch_id)
    if not filters.include_reviewed:
        statement = statement.where(~_reviewed())
    if after is not None:
        statement = statement.where(Verdict.id > after)
    statement = (
        statement.options(selectinload(Comparison.jury_votes)).order_by(Verdict.id).limit(limit)
    )
    result = await session.execute(statement)
    return [(comparison, verdict) for comparison, verdict in result.all()]
