"""The review queue: pairs whose jury split, for humans to label.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store.comparisons import is_current_verdict
from app.store.models import Comparison, Verdict
from app.store.models_review import ReviewPending
from app.store.review_pending import covered_by_gold, not_covered_by_gold, superseded


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """Which split jury verdicts go to human review."""

    min_disagreement: float
    judge: str | None = None
    batch_id: uuid.UUID | None = None
    include_reviewed: bool = False
    """False leaves out pairs a human already labeled (a review or an imported gold label)."""


async def review_queue(
    session: AsyncSession, filters: QueueFilters, *, after: int | None, limit: int
) -> list[tuple[Comparison, Verdict]]:
    """Comparisons whose current verdict's disagreement is at least the threshold.

    Oldest verdict first, after a verdict-id cursor; each comparison comes
    with its votes loaded.

    Two statements: the page's verdict ids, then their rows. Without
    reviewed pairs (the review queue proper) the ids come from
    ``review_pending``, the work list the writes keep of current split
    verdicts no gold label covers: reviewed pairs and superseded verdicts
    are not in it, so an exhausted queue (every split reviewed) reads no
    verdict at all (:func:`_pending_page`). With them, or at a threshold of
    0 (unanimous juries too, which the work list leaves out), the
    candidates are the split verdicts of ``ix_verdicts_jury_queue``. Only
    the page's own rows are read whole.
    """
    if filters.include_reviewed or filters.min_disagreement <= 0:
        ids = _all_verdict_ids(filters)
        if after is not None:
            ids = ids.where(Verdict.id > after)
        page_ids = list((await session.execute(ids.order_by(Verdict.id).limit(limit))).scalars())
    else:
        page_ids = await _pending_page(session, filters, after=after, limit=limit)
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


async def _pending_page(
    session: AsyncSession, filters: QueueFilters, *, after: int | None, limit: int
) -> list[int]:
    """The page's verdict ids from the work list, its filters on its own columns.

    The work list is a superset (a row can outlive its turn when two writes
    race), so each row is still checked: its verdict current, no gold label
    on the comparison or the pair. The checks are columns of the next
    ``limit`` rows in id order, not conditions on the walk: the planner
    then probes indexes for those rows alone, where as conditions it may
    hash the whole gold table to filter a long walk. Rows that fail them
    are passed over (another chunk is read), not deleted: a gold label
    deleted meanwhile may have made such a row right again.
    """
    page: list[int] = []
    while True:
        walk = select(ReviewPending).where(ReviewPending.disagreement >= filters.min_disagreement)
        if filters.judge is not None:
            walk = walk.where(ReviewPending.judge == filters.judge)
        if filters.batch_id is not None:
            walk = walk.where(ReviewPending.batch_id == filters.batch_id)
        if after is not None:
            walk = walk.where(ReviewPending.verdict_id > after)
        chunk = walk.order_by(ReviewPending.verdict_id).limit(limit).subquery()
        is_open = and_(
            ~superseded(chunk.c.comparison_id, chunk.c.verdict_id),
            not_covered_by_gold(chunk.c.comparison_id, chunk.c.pair_key),
        )
        # Sorted here: an ORDER BY over the chunk would be a sort of its own on SQLite.
        result = await session.execute(select(chunk.c.verdict_id, is_open))
        rows = sorted((verdict_id, bool(open_)) for verdict_id, open_ in result)
        page += [verdict_id for verdict_id, open_ in rows if open_]
        if len(page) >= limit or len(rows) < limit:
            return page[:limit]
        after = rows[-1][0]


def _all_verdict_ids(filters: QueueFilters) -> Select[int]:
    """Current jury verdicts at or above the threshold, reviewed or not as the filters say.

    Walks the candidates in ``ix_verdicts_jury_queue`` alone and reads a
    comparison only for a filter on it.
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
        ids = ids.where(~covered_by_gold(Comparison.id, Comparison.pair_key))
    return ids
