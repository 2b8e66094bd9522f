"""Seeding comparisons, verdicts and batches straight into a test database (review queue tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from app.keys import pair_key
from app.labeling.review import queues
from app.labeling.review.create import QueueSpec, create_queue
from app.store.db import Database
from app.store.models import Batch, Comparison, GoldLabel, Verdict
from app.store.models_review import ReviewAssignment, ReviewItem

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Seeded:
    comparison_id: uuid.UUID
    pair_key: str
    batch_id: uuid.UUID | None


@dataclass
class PairSpec:
    """One comparison and its current verdict (``winner`` None: not judged)."""

    name: str
    judge: str = "judge-1"
    winner: str | None = "a"
    confidence: float | None = 0.9
    consistent: bool | None = True
    disagreement: float | None = None
    batch: str | None = None
    same_pair_as: str | None = None
    gold: str | None = None


async def seed(db: Database, specs: list[PairSpec]) -> dict[str, Seeded]:
    """Store each spec as a comparison (its pair by name) with its verdict; by name."""
    out: dict[str, Seeded] = {}
    batch_ids: dict[str, uuid.UUID] = {}
    async with db.transaction() as session:
        for n, spec in enumerate(specs):
            if spec.batch is not None and spec.batch not in batch_ids:
                batch = Batch(id=uuid.uuid4(), name=spec.batch, source="test", judge=spec.judge)
                session.add(batch)
                await session.flush()
                batch_ids[spec.batch] = batch.id
            base = spec.same_pair_as or spec.name
            prompt, a, b = f"prompt {base}", f"answer A of {base}", f"answer B of {base}"
            key = pair_key(prompt, a, b)
            comparison = Comparison(
                id=uuid.uuid4(),
                label_key=uuid.uuid4().hex,
                pair_key=key,
                external_id=spec.name,
                prompt=prompt,
                response_a=a,
                response_b=b,
                judge=spec.judge,
                judge_spec=spec.judge,
                judge_config={},
                template_version="t1",
                status="labeled" if spec.winner else "pending",
                batch_id=batch_ids.get(spec.batch) if spec.batch else None,
                created_at=T0 + timedelta(seconds=n),
            )
            session.add(comparison)
            await session.flush()
            if spec.winner is not None:
                session.add(_verdict(comparison.id, spec))
            if spec.gold is not None:
                session.add(_gold(key, spec.gold))
            out[spec.name] = Seeded(comparison.id, key, comparison.batch_id)
    return out


def _verdict(comparison_id: uuid.UUID, spec: PairSpec) -> Verdict:
    assert spec.winner is not None
    return Verdict(
        comparison_id=comparison_id,
        winner=spec.winner,
        confidence=spec.confidence,
        position_consistent=spec.consistent,
        rationale="because",
        length_a=10,
        length_b=10,
        disagreement=spec.disagreement,
    )


def _gold(key: str, winner: str) -> GoldLabel:
    return GoldLabel(
        pair_key=key, dedupe_key=uuid.uuid4().hex, winner=winner, source="import", origin="t"
    )


T = TypeVar("T")


class Env:
    """A database and a loop for one test; ``tx(fn)`` runs fn(session) in a transaction."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = Database(url)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def tx(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            async with self.db.transaction() as session:
                return await fn(session)

        return self.run(go())

    def seed(self, specs: list[PairSpec]) -> dict[str, Seeded]:
        return self.run(seed(self.db, specs))

    def queue(self, **spec: Any) -> uuid.UUID:
        values = {"name": "q", **spec}
        queue = self.tx(
            lambda s: create_queue(s, QueueSpec(**values), created_by="t", max_items=1000)
        )
        return queue.id

    def next(self, queue_id: uuid.UUID, reviewer: str) -> queues.ServedItem | None:
        return self.tx(lambda s: queues.next_item(s, queue_id, reviewer))

    def answer(self, served: queues.ServedItem, reviewer: str, choice: str) -> queues.Answered:
        return self.tx(
            lambda s: queues.answer(s, served.assignment_id, reviewer, choice)  # type: ignore[arg-type]
        )

    def items(self, queue_id: uuid.UUID) -> list[ReviewItem]:
        async def go(session: Any) -> list[ReviewItem]:
            found = await session.scalars(
                select(ReviewItem).where(ReviewItem.queue_id == queue_id).order_by(ReviewItem.id)
            )
            return list(found)

        return self.tx(go)

    def golds(self) -> list[GoldLabel]:
        async def go(session: Any) -> list[GoldLabel]:
            return list(
                await session.scalars(select(GoldLabel).where(GoldLabel.source == "review"))
            )

        return self.tx(go)

    def close(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()


def force_order(env: Env, assignment_id: int, order: str) -> None:
    async def go(session: Any) -> None:
        row = await session.get(ReviewAssignment, assignment_id)
        row.shown_order = order

    env.tx(go)
