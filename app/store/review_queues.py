"""Queries for human review queues: choosing their pairs, serving, answering, undoing.

Functions take a session inside a transaction someone else owns; none of
them commits. Serving leases an item to a reviewer the way batch workers
claim comparisons: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, then
a re-check under the row lock (a lease committed by another reviewer just
before is visible to the re-check's fresh snapshot), and a lease that
expires when a reviewer walks away.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.store import db, review_pending
from app.store.comparisons import is_current_verdict
from app.store.models import Comparison, GoldLabel, Verdict, utcnow
from app.store.models_review import ReviewAssignment, ReviewItem, ReviewQueue

CLAIM_TRIES = 20
"""Candidates tried in one claim before giving up (each lost only to a concurrent reviewer)."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which comparisons a queue kind takes; the use case checks the values."""

    kind: str
    batch_id: uuid.UUID | None
    threshold: float | None
    limit: int


def _current(verdict: Any) -> ColumnElement[bool]:
    newer = aliased(Verdict)
    return ~exists().where(newer.comparison_id == verdict.comparison_id, newer.id > verdict.id)


def _has_gold() -> ColumnElement[bool]:
    return exists().where(
        or_(GoldLabel.comparison_id == Comparison.id, GoldLabel.pair_key == Comparison.pair_key)
    )


def _judges_disagree() -> ColumnElement[bool]:
    other = aliased(Comparison)
    verdict = aliased(Verdict)
    return exists().where(
        other.pair_key == Comparison.pair_key,
        other.judge != Comparison.judge,
        verdict.comparison_id == other.id,
        _current(verdict),
        verdict.winner != Verdict.winner,
    )


def _kind_filter(selection: Selection) -> ColumnElement[bool] | None:
    kind, threshold = selection.kind, selection.threshold
    if kind == "disagreement":
        return (
            Verdict.disagreement >= threshold if threshold is not None else Verdict.disagreement > 0
        )
    if kind == "inconsistent":
        return Verdict.position_consistent.is_(False)
    if kind == "low-confidence":
        assert threshold is not None
        return and_(Verdict.confidence.is_not(None), Verdict.confidence < threshold)
    if kind == "judges-disagree":
        return and_(Comparison.pair_key.is_not(None), _judges_disagree())
    return None  # audit: every judged comparison of the batch


async def candidates(
    session: AsyncSession, selection: Selection
) -> list[tuple[uuid.UUID, str | None]]:
    """(comparison id, pair key) of every comparison the kind selects, oldest first."""
    statement: Select[uuid.UUID, str | None]
    if selection.kind == "no-gold":
        statement = select(Comparison.id, Comparison.pair_key).where(~_has_gold())
    else:
        statement = select(Comparison.id, Comparison.pair_key).join(
            Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict())
        )
        condition = _kind_filter(selection)
        if condition is not None:
            statement = statement.where(condition)
    if selection.batch_id is not None:
        statement = statement.where(Comparison.batch_id == selection.batch_id)
    statement = statement.order_by(Comparison.created_at, Comparison.id).limit(selection.limit)
    result = await session.execute(statement)
    return [(row[0], row[1]) for row in result.all()]


async def stream_judged(
    session: AsyncSession, batch_id: uuid.UUID
) -> AsyncIterator[tuple[uuid.UUID, str | None]]:
    """(comparison id, pair key) of every judged comparison of a batch, one per pair, streamed.

    Ordered by pair key (pairs without a key last, each its own), so the
    first of each pair is kept without remembering the keys already seen:
    memory stays bounded however large the batch.
    """
    statement = (
        select(Comparison.id, Comparison.pair_key)
        .join(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
        .where(Comparison.batch_id == batch_id)
        .order_by(
            Comparison.pair_key.is_(None), Comparison.pair_key, Comparison.created_at, Comparison.id
        )
        .execution_options(yield_per=2000)
    )
    previous: str | None = None
    result = await session.stream(statement)
    async for comparison_id, key in result:
        if key is not None and key == previous:
            continue
        previous = key
        yield comparison_id, key


async def queue_by_name(session: AsyncSession, name: str) -> ReviewQueue | None:
    found: ReviewQueue | None = await session.scalar(
        select(ReviewQueue).where(ReviewQueue.name == name)
    )
    return found


async def get_queue(session: AsyncSession, queue_id: uuid.UUID) -> ReviewQueue | None:
    return await session.get(ReviewQueue, queue_id)


async def all_queues(session: AsyncSession, limit: int = 1000) -> list[ReviewQueue]:
    result = await session.scalars(
        select(ReviewQueue).order_by(ReviewQueue.created_at).limit(limit)
    )
    return list(result)


async def add_queue(session: AsyncSession, values: dict[str, Any]) -> ReviewQueue:
    queue = ReviewQueue(**values)
    session.add(queue)
    await session.flush()
    return queue


async def add_items(
    session: AsyncSession, queue_id: uuid.UUID, rows: Sequence[tuple[uuid.UUID, str | None]]
) -> None:
    """Put pairs in a queue, in the given order (the order items are served in)."""
    if not rows:
        return
    values: list[dict[str, Any]] = [
        {"queue_id": queue_id, "comparison_id": cid, "pair_key": key, "answers": 0, "done": False}
        for cid, key in rows
    ]
    for start in range(0, len(values), 5000):
        await session.execute(insert(ReviewItem), values[start : start + 5000])


@dataclass(frozen=True, slots=True)
class Progress:
    items: int
    done: int
    answered_by: int
    """Items this reviewer answered or skipped."""
    left_for: int
    """Items still open that this reviewer has not answered or skipped."""


def _mine(reviewer: str, states: tuple[str, ...] = ("answered", "skipped")) -> ColumnElement[bool]:
    return exists().where(
        ReviewAssignment.item_id == ReviewItem.id,
        ReviewAssignment.reviewer == reviewer,
        ReviewAssignment.state.in_(states),
    )


async def progress(session: AsyncSession, queue_id: uuid.UUID, reviewer: str) -> Progress:
    """One statement; no count over the queue's open items (at 100,000 that took ~40 ms).

    Left for the reviewer = open items - those open ones they answered or
    skipped; each count walks an index over done items or the reviewer's
    own assignments only.
    """
    done = (
        select(func.count())
        .where(ReviewItem.queue_id == queue_id, ReviewItem.done == true())
        .scalar_subquery()
    )
    mine = ReviewAssignment.state.in_(("answered", "skipped"))
    answered = (
        select(func.count())
        .where(ReviewAssignment.queue_id == queue_id, ReviewAssignment.reviewer == reviewer, mine)
        .scalar_subquery()
    )
    mine_open = (
        select(func.count())
        .select_from(ReviewAssignment)
        .join(ReviewItem, ReviewItem.id == ReviewAssignment.item_id)
        .where(
            ReviewAssignment.queue_id == queue_id,
            ReviewAssignment.reviewer == reviewer,
            mine,
            ReviewItem.done == false(),
        )
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(ReviewQueue.items, done, answered, mine_open).where(ReviewQueue.id == queue_id)
        )
    ).one()
    items, done_n, answered_n, mine_open_n = (int(v or 0) for v in row)
    return Progress(items, done_n, answered_n, items - done_n - mine_open_n)


async def live_lease(
    session: AsyncSession, queue_id: uuid.UUID, reviewer: str, now: datetime
) -> ReviewAssignment | None:
    """The reviewer's live lease on an open item of the queue (the newest), if any."""
    statement = (
        select(ReviewAssignment)
        .join(ReviewItem, ReviewItem.id == ReviewAssignment.item_id)
        .where(
            ReviewAssignment.queue_id == queue_id,
            ReviewAssignment.reviewer == reviewer,
            ReviewAssignment.state == "leased",
            ReviewAssignment.lease_expires_at > now,
            ReviewItem.done == false(),
        )
        .order_by(ReviewAssignment.lease_expires_at.desc(), ReviewAssignment.id.desc())
        .limit(1)
    )
    found: ReviewAssignment | None = await session.scalar(statement)
    return found


def _taken(item_id: Any, reviewer: str, now: datetime) -> Any:
    """Answers plus other reviewers' live leases on an item: the places of k it fills."""
    return (
        select(func.count())
        .where(
            ReviewAssignment.item_id == item_id,
            ReviewAssignment.reviewer != reviewer,
            or_(
                ReviewAssignment.state == "answered",
                and_(ReviewAssignment.state == "leased", ReviewAssignment.lease_expires_at > now),
            ),
        )
        .scalar_subquery()
    )


def _servable(
    reviewer: str, overlap: int, now: datetime, *, unseen: bool = False
) -> ColumnElement[bool]:
    """Open, not answered or skipped by the reviewer, and a place of k free.

    ``unseen``: the reviewer has no assignment on these items at all (past
    their furthest item), so the check of their own answers is left out.
    """
    free = _taken(ReviewItem.id, reviewer, now) < overlap
    if unseen:
        return and_(ReviewItem.done == false(), free)
    return and_(ReviewItem.done == false(), ~_mine(reviewer), free)


async def claim_item(
    session: AsyncSession, queue_id: uuid.UUID, reviewer: str, overlap: int, now: datetime
) -> int | None:
    """Lock the first item this reviewer may be served; its id, or None when none is left.

    The candidate is taken with SKIP LOCKED, then checked again by a new
    statement while its row is locked: every claimer of an item locks it
    first, so the check sees every lease committed before.
    """
    # Past the last item the reviewer was served first: the items before it are theirs
    # or were full when they passed, and scanning past thousands of their own answers
    # is what would make serving slow. Those left behind are served once nothing is ahead.
    # A reviewer with no assignment yet starts after 0, with nothing of theirs to skip.
    cursor = (
        select(func.coalesce(func.max(ReviewAssignment.item_id), 0))
        .where(ReviewAssignment.queue_id == queue_id, ReviewAssignment.reviewer == reviewer)
        .scalar_subquery()
    )
    ahead = await _claim(session, queue_id, reviewer, overlap, now, after=cursor)
    if ahead is not None:
        return ahead
    return await _claim(session, queue_id, reviewer, overlap, now, after=None)


async def _claim(
    session: AsyncSession,
    queue_id: uuid.UUID,
    reviewer: str,
    overlap: int,
    now: datetime,
    *,
    after: Any,
) -> int | None:
    passed: list[int] = []
    for _ in range(CLAIM_TRIES):
        statement = (
            select(ReviewItem.id)
            .where(
                ReviewItem.queue_id == queue_id,
                _servable(reviewer, overlap, now, unseen=after is not None),
            )
            .order_by(ReviewItem.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=ReviewItem)
        )
        if after is not None:
            statement = statement.where(ReviewItem.id > after)
        if passed:
            statement = statement.where(ReviewItem.id.not_in(passed))
        item_id = await session.scalar(statement)
        if item_id is None:
            return None
        still = await session.scalar(
            select(ReviewItem.id).where(ReviewItem.id == item_id, _servable(reviewer, overlap, now))
        )
        if still is not None:
            return int(item_id)
        passed.append(int(item_id))
    return None


async def lease(
    session: AsyncSession,
    item_id: int,
    queue_id: uuid.UUID,
    reviewer: str,
    order: str,
    expires: datetime,
) -> ReviewAssignment:
    """Lease an item to a reviewer; a reviewer's earlier lease keeps the order it drew."""
    statement = db.insert_for(session)(ReviewAssignment).values(
        item_id=item_id,
        queue_id=queue_id,
        reviewer=reviewer,
        shown_order=order,
        state="leased",
        lease_expires_at=expires,
        created_at=utcnow(),
    )
    statement = statement.on_conflict_do_update(
        index_elements=["item_id", "reviewer"],
        set_={"lease_expires_at": expires},
        where=ReviewAssignment.state == "leased",
    ).returning(ReviewAssignment)
    found: ReviewAssignment | None = await session.scalar(
        statement, execution_options={"populate_existing": True}
    )
    if found is None:  # the row is an answer or skip: nothing updated, nothing returned
        found = await session.scalar(
            select(ReviewAssignment)
            .where(ReviewAssignment.item_id == item_id, ReviewAssignment.reviewer == reviewer)
            .execution_options(populate_existing=True)
        )
    assert found is not None
    return found


async def item_and_comparison(session: AsyncSession, item_id: int) -> tuple[ReviewItem, Comparison]:
    """An item and its pair, in one statement."""
    row = (
        await session.execute(
            select(ReviewItem, Comparison)
            .join(Comparison, Comparison.id == ReviewItem.comparison_id)
            .where(ReviewItem.id == item_id)
        )
    ).one()
    return row[0], row[1]


async def assignment(
    session: AsyncSession, assignment_id: int, reviewer: str
) -> ReviewAssignment | None:
    """The reviewer's own assignment (another's is as good as absent)."""
    found: ReviewAssignment | None = await session.scalar(
        select(ReviewAssignment)
        .where(ReviewAssignment.id == assignment_id, ReviewAssignment.reviewer == reviewer)
        .execution_options(populate_existing=True)
    )
    return found


async def lock_item(session: AsyncSession, item_id: int) -> ReviewItem:
    """The item, its row locked for the rest of the transaction (an UPDATE: SQLite too)."""
    await session.execute(
        update(ReviewItem)
        .where(ReviewItem.id == item_id)
        .values(answers=ReviewItem.answers)
        .execution_options(synchronize_session=False)
    )
    item = await session.scalar(
        select(ReviewItem).where(ReviewItem.id == item_id).execution_options(populate_existing=True)
    )
    assert item is not None
    return item


async def others_taken(session: AsyncSession, item_id: int, reviewer: str, now: datetime) -> int:
    return int(await session.scalar(select(_taken(item_id, reviewer, now))) or 0)


async def answers_of(session: AsyncSession, item_id: int) -> list[ReviewAssignment]:
    """The answers (not skips) on an item, oldest first."""
    result = await session.scalars(
        select(ReviewAssignment)
        .where(ReviewAssignment.item_id == item_id, ReviewAssignment.state == "answered")
        .order_by(ReviewAssignment.answered_at, ReviewAssignment.id)
    )
    return list(result)


async def last_answer(
    session: AsyncSession, queue_id: uuid.UUID, reviewer: str
) -> ReviewAssignment | None:
    """The reviewer's most recent answer or skip in the queue."""
    found: ReviewAssignment | None = await session.scalar(
        select(ReviewAssignment)
        .where(
            ReviewAssignment.queue_id == queue_id,
            ReviewAssignment.reviewer == reviewer,
            ReviewAssignment.state.in_(("answered", "skipped")),
        )
        .order_by(ReviewAssignment.answered_at.desc(), ReviewAssignment.id.desc())
        .limit(1)
    )
    return found


async def delete_gold(session: AsyncSession, gold_label_id: int) -> None:
    """Delete a gold label (an undone answer): the split verdicts it covered go back to review."""
    deleted = await session.execute(
        delete(GoldLabel)
        .where(GoldLabel.id == gold_label_id)
        .returning(GoldLabel.comparison_id, GoldLabel.pair_key)
    )
    for comparison_id, pair_key in deleted.all():
        await review_pending.review_deleted(session, comparison_id, pair_key)


async def queue_answers(
    session: AsyncSession,
    queue_id: uuid.UUID,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> list[tuple[int, str | None, str, str | None]]:
    """(item id, pair key, reviewer, winner) of every answer in a queue.

    ``conditions`` on :class:`Comparison` (a report's judge and batch) keep
    the answers on items whose comparison meets them.
    """
    statement = (
        select(
            ReviewItem.id, ReviewItem.pair_key, ReviewAssignment.reviewer, ReviewAssignment.winner
        )
        .join(ReviewItem, ReviewItem.id == ReviewAssignment.item_id)
        .where(ReviewAssignment.queue_id == queue_id, ReviewAssignment.state == "answered")
        .order_by(ReviewItem.id, ReviewAssignment.id)
    )
    if conditions:
        statement = statement.join(Comparison, Comparison.id == ReviewItem.comparison_id).where(
            *conditions
        )
    result = await session.execute(statement)
    return [(row[0], row[1], row[2], row[3]) for row in result.all()]


async def judge_winners(
    session: AsyncSession, pair_keys: Sequence[str], judge: str | None = None
) -> list[tuple[str | None, str, str]]:
    """(pair key, judge, winner) of the current verdict of every comparison of these pairs.

    ``judge``: that judge's verdicts only.
    """
    found: list[tuple[str | None, str, str]] = []
    keys = list(dict.fromkeys(pair_keys))
    for start in range(0, len(keys), 500):
        statement = (
            select(Comparison.pair_key, Comparison.judge, Verdict.winner)
            .join(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
            .where(Comparison.pair_key.in_(keys[start : start + 500]))
        )
        if judge is not None:
            statement = statement.where(Comparison.judge == judge)
        result = await session.execute(statement)
        found.extend((row[0], row[1], row[2]) for row in result.all())
    return found


async def current_verdicts(
    session: AsyncSession, comparison_id: uuid.UUID
) -> list[tuple[str, Verdict]]:
    """(judge, current verdict) of every comparison of the same pair, by judge name."""
    pair = await session.scalar(select(Comparison.pair_key).where(Comparison.id == comparison_id))
    condition = Comparison.id == comparison_id if pair is None else Comparison.pair_key == pair
    result = await session.execute(
        select(Verdict, Comparison.judge)
        .join(Comparison, Comparison.id == Verdict.comparison_id)
        .where(condition, is_current_verdict())
        .order_by(Comparison.judge)
    )
    return [(judge, verdict) for verdict, judge in result.all()]


@dataclass(frozen=True, slots=True)
class QueueCounts:
    done: int
    answers: int
    reviewers: int


async def counts(session: AsyncSession, queue_id: uuid.UUID) -> QueueCounts:
    """Items done, answers given (skips not counted) and distinct reviewers who answered."""
    done = await session.scalar(
        select(func.count()).where(ReviewItem.queue_id == queue_id, ReviewItem.done == true())
    )
    answered = select(ReviewAssignment.reviewer).where(
        ReviewAssignment.queue_id == queue_id, ReviewAssignment.state == "answered"
    )
    answers = await session.scalar(select(func.count()).select_from(answered.subquery()))
    reviewers = await session.scalar(
        select(func.count()).select_from(answered.distinct().subquery())
    )
    return QueueCounts(int(done or 0), int(answers or 0), int(reviewers or 0))
