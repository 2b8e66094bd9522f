"""Keeping ``review_pending``, the review queue's work list, in step with the writes.

The table holds a row for every current split jury verdict (disagreement
above 0) that no gold label covers, by the comparison or by its pair key
(:class:`~app.store.models_review.ReviewPending`). Each write that changes
that set changes the rows in the same transaction:

- a jury verdict stored: the comparison's older rows go, its own row comes
  in when it split and the pair is unreviewed (:func:`verdicts_stored`);
- a gold label stored: the rows of its comparison and of its pair key go
  (:func:`reviewed`, :func:`pairs_reviewed`);
- a gold label deleted: the current split verdicts it covered come back,
  unless another gold label still covers them (:func:`review_deleted`).

The queue checks every row it returns (current, unreviewed), so a row left
behind by two writes racing costs speed, never correctness.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Executable,
    Insert,
    Select,
    SQLColumnExpression,
    and_,
    delete,
    exists,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.store.models import Comparison, GoldLabel, Verdict
from app.store.models_review import ReviewPending

PendingRows = Select[int, uuid.UUID, str | None, str, uuid.UUID | None, float | None]
"""verdict_id, comparison_id, pair_key, judge, batch_id, disagreement: the table's columns."""

# Keys per DELETE … IN: well under SQLite's bound-parameter limit.
CHUNK = 5_000


def covered_by_gold(
    comparison_id: SQLColumnExpression[uuid.UUID], pair_key: SQLColumnExpression[str | None]
) -> ColumnElement[bool]:
    """A gold label on the comparison or on its pair: the queue's "reviewed".

    Two EXISTS, not one over an OR: SQLite answers an OR of two columns by
    reading every gold label, per row (tests/test_query_plans.py).
    """
    return or_(
        exists().where(GoldLabel.comparison_id == comparison_id),
        exists().where(GoldLabel.pair_key == pair_key),
    )


def not_covered_by_gold(
    comparison_id: SQLColumnExpression[uuid.UUID], pair_key: SQLColumnExpression[str | None]
) -> ColumnElement[bool]:
    """No gold label on the comparison nor on its pair: ``~covered_by_gold``, as two NOT EXISTS.

    PostgreSQL makes each NOT EXISTS an anti-join probing an index per row;
    the negated OR stays a filter of two subplans, which it hashes from the
    whole gold table when it expects many rows to check.
    """
    return and_(
        ~exists().where(GoldLabel.comparison_id == comparison_id),
        ~exists().where(GoldLabel.pair_key == pair_key),
    )


def superseded(
    comparison_id: SQLColumnExpression[uuid.UUID], verdict_id: SQLColumnExpression[int]
) -> ColumnElement[bool]:
    """A newer verdict of the comparison exists: this one is no longer current."""
    newer = aliased(Verdict)
    return exists().where(newer.comparison_id == comparison_id, newer.id > verdict_id)


def _pending_rows(*conditions: ColumnElement[bool]) -> PendingRows:
    """The rows the table should hold, among the verdicts ``conditions`` pick."""
    return (
        select(
            Verdict.id,
            Verdict.comparison_id,
            Comparison.pair_key,
            Comparison.judge,
            Comparison.batch_id,
            Verdict.disagreement,
        )
        .join(Comparison, Comparison.id == Verdict.comparison_id)
        .where(
            *conditions,
            Verdict.disagreement > 0,
            ~superseded(Verdict.comparison_id, Verdict.id),
            not_covered_by_gold(Comparison.id, Comparison.pair_key),
        )
    )


def _insert(rows: PendingRows) -> Insert:
    return insert(ReviewPending).from_select(
        [
            ReviewPending.verdict_id,
            ReviewPending.comparison_id,
            ReviewPending.pair_key,
            ReviewPending.judge,
            ReviewPending.batch_id,
            ReviewPending.disagreement,
        ],
        rows,
    )


async def verdicts_stored(
    session: AsyncSession, jury_verdicts: Sequence[tuple[uuid.UUID, int, float]]
) -> None:
    """Jury verdicts were just stored, as (comparison id, verdict id, disagreement).

    Each supersedes its comparison's older verdicts, so their rows go; the
    split ones (disagreement above 0) of unreviewed pairs come in. Two
    statements for the whole write, none when it stored no jury verdict.
    """
    if not jury_verdicts:
        return
    comparison_ids = [comparison_id for comparison_id, _, _ in jury_verdicts]
    await session.execute(
        delete(ReviewPending)
        .where(ReviewPending.comparison_id.in_(comparison_ids))
        .execution_options(synchronize_session=False)
    )
    split = [verdict_id for _, verdict_id, disagreement in jury_verdicts if disagreement > 0]
    if split:
        await session.execute(_insert(_pending_rows(Verdict.id.in_(split))))


async def reviewed(
    session: AsyncSession, comparison_id: uuid.UUID | None, pair_key: str | None
) -> None:
    """A gold label was stored on a comparison (a review) or a pair: its rows leave the list."""
    named = []
    if comparison_id is not None:
        named.append(ReviewPending.comparison_id == comparison_id)
    if pair_key is not None:
        named.append(ReviewPending.pair_key == pair_key)
    if named:
        await session.execute(
            delete(ReviewPending).where(or_(*named)).execution_options(synchronize_session=False)
        )


async def pairs_reviewed(session: AsyncSession, pair_keys: Sequence[str]) -> None:
    """Gold labels were stored for these pair keys (an import): their pairs leave the work list."""
    keys = sorted(set(pair_keys))
    for start in range(0, len(keys), CHUNK):
        await session.execute(
            delete(ReviewPending)
            .where(ReviewPending.pair_key.in_(keys[start : start + CHUNK]))
            .execution_options(synchronize_session=False)
        )


async def review_deleted(
    session: AsyncSession, comparison_id: uuid.UUID | None, pair_key: str
) -> None:
    """A gold label was deleted: the current split verdicts it covered come back.

    Those of the comparison it named and of every comparison of its pair,
    unless another gold label still covers them, and not twice.
    """
    scope = Comparison.pair_key == pair_key
    if comparison_id is not None:
        scope = or_(Comparison.id == comparison_id, scope)
    already = exists().where(ReviewPending.verdict_id == Verdict.id)
    await session.execute(_insert(_pending_rows(scope, ~already)))


def refill_statements() -> list[Executable]:
    """Empty the table and fill it from the verdicts and gold labels: migration 0026's fill.

    For rows stored around the writes that keep it (bulk-loaded data, seeds);
    statements, so a synchronous connection can run them too.
    """
    return [delete(ReviewPending), _insert(_pending_rows())]


async def refill(session: AsyncSession) -> None:
    """Rebuild the whole table (:func:`refill_statements`)."""
    for statement in refill_statements():
        await session.execute(statement.execution_options(synchronize_session=False))
