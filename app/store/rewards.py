"""Queries for reward items and the labels behind them. None of them commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.store import db
from app.store.models import Comparison, JudgeCall, Rating, utcnow
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


async def record_items(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, uuid.UUID]:
    """Store a request's items (table column values); a retry finds its rows by item key.

    A row already scored keeps its score; one that had none (failed,
    deadline) takes this request's outcome. Returns every row's id by item key.
    """
    if not rows:
        return {}
    now = utcnow()
    inserted = await db.insert_many_ignoring(
        session,
        RewardItem.__table__,  # type: ignore[arg-type]
        [{**row, "created_at": now, "updated_at": now} for row in rows],
        unique="item_key",
    )
    if inserted == len(rows):  # all new (the usual request): the ids are the rows' own
        return {row["item_key"]: row["id"] for row in rows}
    statement = select(RewardItem.item_key, RewardItem.id, RewardItem.status).where(
        RewardItem.item_key.in_({row["item_key"] for row in rows})
    )
    found = {key: (row_id, status) for key, row_id, status in await session.execute(statement)}
    for row in rows:
        row_id, status = found[row["item_key"]]
        if status != "scored" and row_id != row["id"]:  # stored by an earlier try, unscored
            outcome = {name: row[name] for name in OUTCOME_COLUMNS}
            await session.execute(
                update(RewardItem).where(RewardItem.id == row_id).values(**outcome, updated_at=now)
            )
    return {key: row_id for key, (row_id, _) in found.items()}


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


@dataclass(frozen=True, slots=True)
class RatingRun:
    """A rating to store: its row values (attribute names), the outcome's, and its calls."""

    values: dict[str, Any]
    outcome: dict[str, Any]
    calls: list[dict[str, Any]]


async def store_ratings(
    session: AsyncSession, runs: list[RatingRun]
) -> list[tuple[uuid.UUID, bool]]:
    """Store many judged ratings in a few statements: each one's id, and whether it was taken.

    A new label key is inserted with its outcome. A stored one that has no
    score takes this outcome; one already rated keeps its score (the first
    score stands, as in the rating use case) and is reported as taken.
    Every run's calls are stored either way: they were paid for.
    """
    now = utcnow()
    rows = [_rating_row(run, now) for run in runs]
    inserted = await db.insert_many_ignoring(session, Rating.__table__, rows, unique="label_key")  # type: ignore[arg-type]
    if inserted == len(rows):  # all new (the usual group): the ids are the rows' own
        found = {row["label_key"]: row["id"] for row in rows}
    else:
        keys = {row["label_key"] for row in rows}
        statement = select(Rating.label_key, Rating.id).where(Rating.label_key.in_(keys))
        found = {key: row_id for key, row_id in await session.execute(statement)}
    results: list[tuple[uuid.UUID, bool]] = []
    calls: list[dict[str, Any]] = []
    for row, run in zip(rows, runs, strict=True):
        rating_id = found[row["label_key"]]
        taken = False
        if rating_id != row["id"]:  # stored before this run
            updated = await session.execute(
                update(Rating)
                .where(Rating.id == rating_id, Rating.status != "rated")
                .values(**run.outcome, updated_at=now)
                .returning(Rating.id)
            )
            taken = updated.first() is None
        calls += [{**call, "rating_id": rating_id, "created_at": now} for call in run.calls]
        results.append((rating_id, taken))
    if calls:
        await session.execute(insert(JudgeCall), calls)
    return results


def _rating_row(run: RatingRun, now: datetime) -> dict[str, Any]:
    values = dict(run.values)
    values["metadata"] = values.pop("meta", None)
    empty = {"error_class": None, "score": None, "passed": None, "rationale": None}
    return {
        "id": uuid.uuid4(),
        **values,
        **empty,
        **run.outcome,
        "source_line": None,
        "created_at": now,
        "updated_at": now,
    }
