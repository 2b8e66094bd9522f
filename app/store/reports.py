"""Queries behind the judge-quality report: the facts per comparison, gold, costs, positions.

Functions take a session inside a transaction someone else owns; none of
them commits. Each returns plain rows; the statistics are app.reports'.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.store.comparisons import is_current_verdict
from app.store.models import Batch, Comparison, GoldLabel, JudgeCall, Verdict


@dataclass(frozen=True, slots=True)
class Scope:
    """Which comparisons a report covers: one judge, one batch, or both (None = all)."""

    judge: str | None = None
    batch_id: uuid.UUID | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.judge is not None:
            found.append(Comparison.judge == self.judge)
        if self.batch_id is not None:
            found.append(Comparison.batch_id == self.batch_id)
        return found


@dataclass(frozen=True, slots=True)
class ComparisonFacts:
    """One comparison and its current verdict (all verdict fields None when it has none)."""

    comparison_id: uuid.UUID
    judge: str
    batch_id: uuid.UUID | None
    status: str
    pair_key: str | None
    verdict_id: int | None
    winner: str | None
    confidence: float | None
    position_consistent: bool | None
    length_a: int | None
    length_b: int | None
    category: str | None
    """``metadata["category"]`` when it is a non-empty string (MT-Bench, LLMBar subsets)."""
    template: str | None = None
    """The template ref the pair was judged under (``template_version``)."""


@dataclass(frozen=True, slots=True)
class CostFacts:
    """Judge calls of one (judge, batch): how many, their summed cost, how many had no price."""

    calls: int
    usd: Decimal
    unpriced: int


async def comparison_facts(session: AsyncSession, scope: Scope) -> list[ComparisonFacts]:
    """Every comparison in scope with its current verdict."""
    statement = (
        select(
            Comparison.id,
            Comparison.judge,
            Comparison.batch_id,
            Comparison.status,
            Comparison.pair_key,
            Verdict.id,
            Verdict.winner,
            Verdict.confidence,
            Verdict.position_consistent,
            Verdict.length_a,
            Verdict.length_b,
            # Only the one key, not the whole metadata document, per comparison.
            Comparison.meta["category"],
            Comparison.template_version,
        )
        .outerjoin(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
        .where(*scope.conditions())
        .order_by(Comparison.created_at, Comparison.id)
    )
    result = await session.execute(statement)
    return [
        ComparisonFacts(
            id_, judge, batch, status, key, verdict, winner, conf, both, la, lb, _category(cat), tpl
        )
        for id_, judge, batch, status, key, verdict, winner, conf, both, la, lb, cat, tpl in (
            result.all()
        )
    ]


def _category(value: Any) -> str | None:
    # Metadata is free-form: a number, list or empty string under "category" names none.
    return value if isinstance(value, str) and value else None


async def gold_winners(session: AsyncSession, scope: Scope) -> dict[str, tuple[str, str]]:
    """The gold label that counts for each pair in scope: pair_key → (winner, source).

    A review (a person looking at this very pair in this service) outranks an
    imported label; among several of one kind, the newest counts.
    """
    keys = select(Comparison.pair_key).where(*scope.conditions()).distinct().scalar_subquery()
    rank = case((GoldLabel.source == "review", 1), else_=0)
    statement = (
        select(GoldLabel.pair_key, GoldLabel.winner, GoldLabel.source)
        .where(GoldLabel.pair_key.in_(keys))
        .order_by(GoldLabel.pair_key, rank, GoldLabel.created_at, GoldLabel.id)
    )
    result = await session.execute(statement)
    # Ordered so that, per pair, the label that counts comes last and overwrites the others.
    return {key: (winner, source) for key, winner, source in result.all()}


async def call_costs(
    session: AsyncSession, scope: Scope
) -> dict[tuple[str, uuid.UUID | None], CostFacts]:
    """Calls and their cost per (judge, batch), failed attempts included."""
    statement = (
        select(
            Comparison.judge,
            Comparison.batch_id,
            func.count(JudgeCall.id),
            func.coalesce(func.sum(JudgeCall.cost_usd), 0),
            func.sum(case((JudgeCall.cost_usd.is_(None), 1), else_=0)),
        )
        .join(JudgeCall, JudgeCall.comparison_id == Comparison.id)
        .where(*scope.conditions())
        .group_by(Comparison.judge, Comparison.batch_id)
    )
    result = await session.execute(statement)
    return {
        (judge, batch_id): CostFacts(int(calls), Decimal(usd), int(unpriced or 0))
        for judge, batch_id, calls, usd, unpriced in result.all()
    }


async def inconsistent_positions(session: AsyncSession, scope: Scope) -> dict[int, list[str]]:
    """For current verdicts whose orders disagreed: the position (1, 2, tie) each call chose.

    Positions are as shown to the judge, so "1" in both orders is a judge
    that went for whichever response came first.
    """
    statement = (
        select(JudgeCall.verdict_id, JudgeCall.parsed)
        .join(Verdict, Verdict.id == JudgeCall.verdict_id)
        .join(Comparison, Comparison.id == Verdict.comparison_id)
        .where(
            is_current_verdict(),
            Verdict.position_consistent == false(),
            JudgeCall.error_class.is_(None),
            *scope.conditions(),
        )
        .order_by(JudgeCall.id)
    )
    positions: dict[int, list[str]] = {}
    for verdict_id, parsed in (await session.execute(statement)).all():
        position = _position(parsed)
        if verdict_id is not None and position is not None:
            positions.setdefault(verdict_id, []).append(position)
    return positions


def _position(parsed: Any) -> str | None:
    if isinstance(parsed, dict) and parsed.get("position") in ("1", "2", "tie"):
        position: str = parsed["position"]
        return position
    return None


async def batch_names(session: AsyncSession, batch_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not batch_ids:
        return {}
    result = await session.execute(select(Batch.id, Batch.name).where(Batch.id.in_(batch_ids)))
    return dict(result.all())


async def find_batch(session: AsyncSession, name_or_id: str) -> Batch | None:
    """A batch by its id or its name."""
    try:
        by_id: ColumnElement[bool] = Batch.id == uuid.UUID(name_or_id)
    except ValueError:
        by_id = false()
    found: Batch | None = await session.scalar(
        select(Batch).where(or_(by_id, Batch.name == name_or_id)).limit(1)
    )
    return found
