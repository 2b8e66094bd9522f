"""Keyset pages walk every row once, in order: comparisons by (created_at, id), the review queue
by verdict id, on a seeded database (bench.seed), against what plain Python computes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import create_engine, select, update

from app.store import comparisons
from app.store.comparisons import ComparisonFilters
from app.store.db import Database
from app.store.models import Comparison, GoldLabel, Verdict
from app.store.review_queue import QueueFilters, review_queue
from bench.seed import seed

T = TypeVar("T")
TIE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _run(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        database = Database(url)
        try:
            async with database.transaction() as session:
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(go())


def _comparison_pages(url: str, filters: ComparisonFilters, limit: int) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    after: tuple[datetime, uuid.UUID] | None = None
    while True:
        rows = _run(url, partial(comparisons.page, filters=filters, after=after, limit=limit))
        seen += [row.id for row in rows]
        if len(rows) < limit:
            return seen
        after = (rows[-1].created_at, rows[-1].id)


def test_comparison_pages_break_ties_on_id(database_url: str) -> None:
    """Half the rows share one created_at: the row-value cursor goes through them by id."""
    seed(database_url, 60, batch_rows=20, text_chars=(10, 20))
    engine = create_engine(database_url)
    with engine.begin() as connection:
        ids = connection.execute(select(Comparison.id).order_by(Comparison.id)).scalars().all()
        connection.execute(
            update(Comparison).where(Comparison.id.in_(ids[::2])).values(created_at=TIE)
        )
        rows = connection.execute(select(Comparison.created_at, Comparison.id, Comparison.judge))
        everything = sorted((created_at, cid, judge) for created_at, cid, judge in rows)
    engine.dispose()
    judge = everything[0][2]
    assert _comparison_pages(database_url, ComparisonFilters(), 7) == [c for _, c, _ in everything]
    assert _comparison_pages(database_url, ComparisonFilters(judge=judge), 4) == [
        c for _, c, j in everything if j == judge
    ]


def _queue_pages(url: str, filters: QueueFilters, limit: int) -> list[int]:
    seen: list[int] = []
    after: int | None = None
    while True:
        found = _run(url, partial(review_queue, filters=filters, after=after, limit=limit))
        seen += [verdict.id for _, verdict in found]
        if len(found) < limit:
            return seen
        after = found[-1][1].id


def test_review_queue_pages_leave_out_reviewed_and_superseded(database_url: str) -> None:
    """Juries on every pair, gold on half, some verdicts superseded: the pages hold exactly the
    current split verdicts of unreviewed pairs (or of all pairs, with include_reviewed)."""
    seed(database_url, 120, batch_rows=40, jury=1.0, gold=0.5, text_chars=(10, 20))
    engine = create_engine(database_url)
    with engine.connect() as connection:
        verdicts = connection.execute(
            select(Verdict.id, Verdict.comparison_id, Verdict.disagreement)
        ).all()
        pair_of = dict(connection.execute(select(Comparison.id, Comparison.pair_key)).all())
        gold = connection.execute(select(GoldLabel.pair_key, GoldLabel.comparison_id)).all()
    engine.dispose()
    newest: dict[uuid.UUID, int] = {}
    for verdict_id, comparison_id, _ in verdicts:
        newest[comparison_id] = max(verdict_id, newest.get(comparison_id, 0))
    gold_pairs = {pair for pair, _ in gold}
    gold_comparisons = {cid for _, cid in gold if cid is not None}

    def expected(threshold: float, include_reviewed: bool) -> list[int]:
        return sorted(
            verdict_id
            for verdict_id, cid, disagreement in verdicts
            if disagreement is not None
            and disagreement >= threshold
            and newest[cid] == verdict_id
            and (
                include_reviewed or (pair_of[cid] not in gold_pairs and cid not in gold_comparisons)
            )
        )

    unreviewed = expected(0.3, include_reviewed=False)
    everyone = expected(0.3, include_reviewed=True)
    assert unreviewed  # the seed made both kinds
    assert len(everyone) > len(unreviewed)
    assert _queue_pages(database_url, QueueFilters(0.3), 5) == unreviewed
    assert _queue_pages(database_url, QueueFilters(0.3, include_reviewed=True), 5) == everyone
