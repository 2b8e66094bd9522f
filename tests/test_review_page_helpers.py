"""Helpers of the review page tests: pairs and queues in a database, keys, a live server.

The pairs of a test go into a batch of their own and its queue takes that
batch only, so tests sharing one database (and one server) never see each
other's items.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from sqlalchemy import select

from app.api.app import create_app
from app.keys import pair_key
from app.labeling.admin import create_key
from app.labeling.review.create import QueueSpec, create_queue
from app.settings import Settings
from app.store.db import Database
from app.store.models import Batch, Comparison, Verdict
from app.store.models_review import ReviewAssignment, ReviewItem


@dataclass(frozen=True)
class Pair:
    prompt: Any
    a: str
    b: str


@dataclass(frozen=True)
class Stored:
    assignment_id: int
    comparison_id: uuid.UUID
    reviewer: str
    state: str
    choice: str | None
    winner: str | None
    note: str | None


def run(coro: Any) -> Any:
    """Run a coroutine to its end, in a thread of its own: Playwright's sync API keeps an
    event loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def seed_queue(
    settings: Settings,
    pairs: list[Pair],
    *,
    overlap: int = 1,
    guidelines: str = "Prefer the **correct** answer.",
    show_machine: bool = False,
    name: str | None = None,
    rationale: str = "A is right.",
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """The pairs as judged comparisons of a new batch, and a no-gold queue of that batch."""

    async def go() -> tuple[uuid.UUID, list[uuid.UUID]]:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                batch = Batch(id=uuid.uuid4(), name=uuid.uuid4().hex, source="t", judge="j")
                session.add(batch)
                ids = []
                for pair in pairs:
                    comparison = _comparison(pair, batch.id)
                    session.add(comparison)
                    await session.flush()
                    session.add(_verdict(comparison.id, rationale))
                    ids.append(comparison.id)
                spec = QueueSpec(
                    name=name or f"q-{uuid.uuid4().hex[:10]}",
                    kind="no-gold",
                    batch_id=batch.id,
                    overlap=overlap,
                    guidelines=guidelines,
                    show_machine=show_machine,
                )
                queue = await create_queue(session, spec, created_by="tests", max_items=1000)
                return queue.id, ids
        finally:
            await db.engine.dispose()

    result: tuple[uuid.UUID, list[uuid.UUID]] = run(go())
    return result


def _comparison(pair: Pair, batch_id: uuid.UUID) -> Comparison:
    return Comparison(
        id=uuid.uuid4(),
        label_key=uuid.uuid4().hex,
        pair_key=pair_key(pair.prompt, pair.a, pair.b),
        prompt=pair.prompt,
        response_a=pair.a,
        response_b=pair.b,
        judge="anthropic:claude-sonnet-4-6",
        judge_spec="anthropic:claude-sonnet-4-6",
        judge_config={},
        template_version="t1",
        status="labeled",
        batch_id=batch_id,
    )


def _verdict(comparison_id: uuid.UUID, rationale: str) -> Verdict:
    return Verdict(
        comparison_id=comparison_id,
        winner="a",
        confidence=0.8,
        position_consistent=True,
        rationale=rationale,
        length_a=10,
        length_b=10,
    )


def stored_answers(settings: Settings, queue_id: uuid.UUID) -> list[Stored]:
    """Every assignment of the queue with its item's comparison, in the order made."""

    async def go() -> list[Stored]:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                rows = await session.execute(
                    select(ReviewAssignment, ReviewItem.comparison_id)
                    .join(ReviewItem, ReviewItem.id == ReviewAssignment.item_id)
                    .where(ReviewAssignment.queue_id == queue_id)
                    .order_by(ReviewAssignment.id)
                )
                return [
                    Stored(a.id, cid, a.reviewer, a.state, a.choice, a.winner, a.note)
                    for a, cid in rows
                ]
        finally:
            await db.engine.dispose()

    found: list[Stored] = run(go())
    return found


def new_key(settings: Settings, name: str, *scopes: str) -> str:
    _, plain = run(create_key(settings, name, list(scopes)))
    return str(plain)


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the review page's server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
