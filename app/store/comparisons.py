"""Queries for comparisons, their verdicts and their judge calls.

Functions take a session inside a transaction someone else owns; none of
them commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store import db, review_pending
from app.store.juries import VoteRows, write_votes
from app.store.models import Base, Comparison, JudgeCall, Verdict, utcnow


@dataclass(frozen=True, slots=True)
class ComparisonFilters:
    judge: str | None = None
    winner: str | None = None
    status: str | None = None
    batch_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _with_children(statement: Select[Any]) -> Select[Any]:
    return statement.options(
        selectinload(Comparison.verdicts),
        selectinload(Comparison.calls),
        selectinload(Comparison.jury_votes),
    )


async def get(session: AsyncSession, comparison_id: uuid.UUID) -> Comparison | None:
    result = await session.execute(
        _with_children(select(Comparison).where(Comparison.id == comparison_id))
    )
    found: Comparison | None = result.scalar_one_or_none()
    return found


async def get_by_label_key(session: AsyncSession, label_key: str) -> Comparison | None:
    result = await session.execute(
        _with_children(select(Comparison).where(Comparison.label_key == label_key))
    )
    found: Comparison | None = result.scalar_one_or_none()
    return found


async def insert_if_absent(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID:
    """Insert a comparison unless its label key exists; return the id either way."""
    return await db.insert_if_absent(session, Comparison, values)


# Core tables for set-based writes (executemany with RETURNING), bypassing per-object ORM work.
_VERDICTS = Base.metadata.tables["verdicts"]
_COMPARISONS = Base.metadata.tables["comparisons"]


@dataclass(slots=True)
class RunRows:
    """One judging run, ready to store: the verdict (if any), its calls, the new status."""

    comparison_id: uuid.UUID
    verdict: dict[str, Any] | None
    calls: list[dict[str, Any]]
    status: str
    error_class: str | None
    votes: list[VoteRows] = field(default_factory=list)
    """A jury's run: every member's vote with its calls (``calls`` is then empty)."""


async def write_runs(session: AsyncSession, runs: Sequence[RunRows]) -> None:
    """Store judging runs set-based: one statement per table, whatever the number of runs.

    Batch labeling writes dozens of runs per transaction; statement count,
    not row count, is what costs here.
    """
    if not runs:
        return
    now = utcnow()
    with_verdict = [run for run in runs if run.verdict is not None]
    verdict_ids: dict[uuid.UUID, int] = {}
    if with_verdict:
        result = await session.execute(
            insert(_VERDICTS).returning(
                _VERDICTS.c.id,
                _VERDICTS.c.comparison_id,
                sort_by_parameter_order=True,
            ),
            [
                {**(run.verdict or {}), "comparison_id": run.comparison_id, "created_at": now}
                for run in with_verdict
            ],
        )
        verdict_ids = {comparison_id: verdict_id for verdict_id, comparison_id in result.all()}
        # The review queue's work list: a jury's verdict replaces the comparison's row.
        await review_pending.verdicts_stored(
            session,
            [
                (run.comparison_id, verdict_ids[run.comparison_id], run.verdict["disagreement"])
                for run in with_verdict
                if run.verdict is not None and run.verdict.get("disagreement") is not None
            ],
        )
    calls = [
        {**call, "verdict_id": verdict_ids.get(run.comparison_id), "created_at": now}
        for run in runs
        for call in run.calls
    ]
    jury_runs = [(run.comparison_id, run.votes) for run in runs if run.votes]
    if jury_runs:
        calls += await write_votes(session, jury_runs, verdict_ids, now)
    if calls:
        await session.execute(insert(JudgeCall), calls)
    table = _COMPARISONS
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("run_id"))
        .values(status=bindparam("run_status"), error_class=bindparam("run_error"), updated_at=now),
        [
            {"run_id": r.comparison_id, "run_status": r.status, "run_error": r.error_class}
            for r in runs
        ],
    )


def is_current_verdict() -> ColumnElement[bool]:
    """True for a comparison's current (newest) verdict: no newer one exists.

    Written as NOT EXISTS on (comparison_id, id) rather than
    ``id IN (SELECT max(id) … GROUP BY comparison_id)``: SQLite runs that IN
    list once per outer row, which is quadratic (minutes at 200,000 verdicts).
    """
    return ~review_pending.superseded(Verdict.comparison_id, Verdict.id)


async def page(
    session: AsyncSession,
    filters: ComparisonFilters,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Comparison]:
    """One page of comparisons, oldest first, starting after a (created_at, id) cursor."""
    statement = select(Comparison)
    if filters.judge is not None:
        statement = statement.where(Comparison.judge == filters.judge)
    if filters.status is not None:
        statement = statement.where(Comparison.status == filters.status)
    if filters.batch_id is not None:
        statement = statement.where(Comparison.batch_id == filters.batch_id)
    if filters.created_after is not None:
        statement = statement.where(Comparison.created_at >= filters.created_after)
    if filters.created_before is not None:
        statement = statement.where(Comparison.created_at < filters.created_before)
    if filters.winner is not None:
        statement = statement.join(
            Verdict,
            and_(Verdict.comparison_id == Comparison.id, is_current_verdict()),
        ).where(Verdict.winner == filters.winner)
    if after is not None:
        # A row-value comparison in the index's own order: the whole cursor is the start of
        # the index range (PostgreSQL and SQLite both seek to it), not a filter on each row.
        statement = statement.where(tuple_(Comparison.created_at, Comparison.id) > after)
    statement = statement.order_by(Comparison.created_at, Comparison.id).limit(limit)
    result = await session.execute(_with_children(statement))
    found: list[Comparison] = list(result.scalars().unique())
    return found


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(Comparison.lease_owner.is_(None), Comparison.lease_expires_at < now)


async def claim_label(
    session: AsyncSession,
    comparison_id: uuid.UUID,
    owner: str,
    lease: timedelta,
    *,
    labeled_too: bool,
) -> bool:
    """Lease a comparison to judge it now, unless a live lease holds it; True when leased.

    One conditional UPDATE, so of several processes trying at once exactly
    one wins (the label key's row is the lock). A labeled comparison is
    leased only to judge it again (``labeled_too``, a forced request).
    """
    now = utcnow()
    statement = update(Comparison).where(Comparison.id == comparison_id, _lease_free(now))
    if not labeled_too:
        statement = statement.where(Comparison.status != "labeled")
    result = await session.execute(
        statement.values(lease_owner=owner, lease_expires_at=now + lease).execution_options(
            synchronize_session=False
        )
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def renew_label(
    session: AsyncSession, comparison_id: uuid.UUID, owner: str, lease: timedelta
) -> None:
    await session.execute(
        update(Comparison)
        .where(Comparison.id == comparison_id, Comparison.lease_owner == owner)
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


async def release_label(session: AsyncSession, comparison_id: uuid.UUID, owner: str) -> None:
    await session.execute(
        update(Comparison)
        .where(Comparison.id == comparison_id, Comparison.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
