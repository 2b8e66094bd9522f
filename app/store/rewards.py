"""Queries for reward items and the labels behind them. None of them commits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store import db
from app.store.models import Comparison, Rating, utcnow
from app.store.models_rewards import RewardItem

# Reward rows are new each request: the outcome columns a retry may fill in.
OUTCOME_COLUMNS = ("status", "reason", "score", "raw_score", "passed", "rating_id", "comparison_id")


async def rated(session: AsyncSession, label_keys: Sequence[str]) -> dict[str, Rating]:
    """The rated ratings among these label keys (their calls loaded), by label key."""
    if not label_keys:
        return {}
    statement = (
        select(Rating)
        .where(Rating.label_key.in_(set(label_keys)), Rating.status == "rated")
        .options(selectinload(Rating.calls))
    )
    return {row.label_key: row for row in (await session.execute(statement)).scalars()}


async def judged(session: AsyncSession, label_keys: Sequence[str]) -> dict[str, Comparison]:
    """The labeled comparisons among these label keys (verdicts and calls loaded)."""
    if not label_keys:
        return {}
    statement = (
        select(Comparison)
        .where(Comparison.label_key.in_(set(label_keys)), Comparison.status == "labeled")
        .options(selectinload(Comparison.verdicts), selectinload(Comparison.calls))
    )
    return {row.label_key: row for row in (await session.execute(statement)).scalars()}


async def record_items(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, RewardItem]:
    """Store a request's items (table column values); a retry finds its rows by item key.

    A row already scored keeps its score; one that had none (failed,
    deadline) takes this request's outcome. Returns every row by item key.
    """
    if not rows:
        return {}
    now = utcnow()
    await db.insert_many_ignoring(
        session,
        RewardItem.__table__,  # type: ignore[arg-type]
        [{**row, "created_at": now, "updated_at": now} for row in rows],
        unique="item_key",
    )
    keys = [row["item_key"] for row in rows]
    found = await _by_keys(session, keys)
    for row in rows:
        existing = found[row["item_key"]]
        if existing.status != "scored" and existing.id != row["id"]:
            outcome = {name: row[name] for name in OUTCOME_COLUMNS}
            await session.execute(
                update(RewardItem)
                .where(RewardItem.id == existing.id)
                .values(**outcome, updated_at=now)
            )
    return (
        await _by_keys(session, keys)
        if any(found[row["item_key"]].id != row["id"] for row in rows)
        else found
    )


async def _by_keys(session: AsyncSession, keys: list[str]) -> dict[str, RewardItem]:
    statement = (
        select(RewardItem)
        .where(RewardItem.item_key.in_(set(keys)))
        .execution_options(populate_existing=True)
    )
    return {row.item_key: row for row in (await session.execute(statement)).scalars()}


def run_items(connection: Connection, run: str, chunk_rows: int) -> Iterator[Row[Any]]:
    """A run's scored reward items for an export, by step then time, streamed."""
    statement = (
        select(
            RewardItem.id,
            RewardItem.prompt,
            RewardItem.completion,
            RewardItem.passed,
            RewardItem.judge,
            RewardItem.scorer,
            RewardItem.step,
        )
        .where(RewardItem.run == run, RewardItem.status == "scored")
        .order_by(RewardItem.step, RewardItem.created_at, RewardItem.id)
    )
    yield from connection.execute(statement.execution_options(yield_per=chunk_rows))
