"""The review queue: pairs whose jury split, for humans to label.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, or_, select
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

    Two statements: the page's verdict ids, then their rows. The first walks
    the candidates in ``ix_verdicts_jury_queue`` alone and reads a
    comparison only for a filter on it, so the candidates it passes over
    (reviewed pairs, superseded verdicts) cost no read of the verdicts'
    or comparisons' rows; only the page's own rows are read whole.
    """
    ids = select(Verdict.id).where(
        Verdict.disagreement >= filters.min_disagreement, is_current_verdict()
    )
    if filters.judge is not None or filters.batch_id is not None or not filters.include_reviewed:
        ids = ids.join(Comparison, Comparison.id == Verdict.comparison_id)
    if filters.judge is not None:
        ids = ids.where(Comparison.judge == filters.judge)
    if filters.batch_id is not None:
        ids = ids.where(Comparison.batch_id == filters.batch_id)
    if not filters.include_reviewed:
        ids = ids.where(~_reviewed())
    if after is not None:
        ids = ids.where(Verdict.id > after)
    page_ids = list((await session.execute(ids.order_by(Verdict.id).limit(limit))).scalars())
    if not page_ids:
        return []
    rows = await session.execute(
        select(Comparison, Verdict)
        .join(Verdict, Verdict.comparison_id == Comparison.id)
        .where(Verdict.id.in_(page_ids))
        .options(selectinload(Comparison.jury_votes))
    )
    found = {verdict.id: (comparison, verdict) for comparison, verdict in rows.all()}
    # A comparison deleted between the two statements is left out, not an error.
    return [found[verdict_id] for verdict_id in page_ids if verdict_id in found]
