"""The review queue's work list (``review_pending``, issue 20) against what the queue means.

A scripted random sequence of the writes that change the queue (jury verdicts stored, split
or unanimous, pairs judged again, reviews on a comparison, gold imported by pair key, a
review undone) runs through the store's own write functions; after each step the work list
holds exactly the current split verdicts no gold label covers, and every page of the queue
(each filter, threshold and page size, through the cursor) equals what plain Python computes
from the stored rows. Then: an exhausted queue reads no verdict; bulk-loaded rows are
filled by ``refill`` and by migration 0026.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from sqlalchemy import delete, event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.store import comparisons, gold, migrate, review_pending, review_queues
from app.store.db import Database
from app.store.models import Batch, Comparison, GoldLabel, Verdict, utcnow
from app.store.models_review import ReviewPending
from app.store.review_queue import QueueFilters, review_queue
from bench.seed import seed
from tests.test_query_plans import explain

T = TypeVar("T")
JUDGES = ("jury-a", "jury-b", "solo")
"""Two juries (verdicts with a disagreement) and a single judge (verdicts without)."""
SPLITS = (0.0, 0.0, 0.3333, 0.5, 0.6667)
THRESHOLDS = (0.3, 0.5, 0.6)


@dataclass
class World:
    """The comparisons a script writes to, and the batches they are in."""

    comparisons: list[tuple[uuid.UUID, str, str, uuid.UUID | None]]
    """(id, pair key, judge, batch id); pairs repeat across judges."""
    batches: list[uuid.UUID]


def _run(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def go() -> T:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(go())


async def _make_world(session: AsyncSession, rng: random.Random, pairs: int) -> World:
    batches = [uuid.uuid4(), uuid.uuid4()]
    batch_choices: list[uuid.UUID | None] = [*batches, None]
    for n, made_batch in enumerate(batches):
        session.add(Batch(id=made_batch, name=f"batch-{n}", source="test", judge="mixed"))
    await session.flush()
    made: list[tuple[uuid.UUID, str, str, uuid.UUID | None]] = []
    for pair in range(pairs):
        key = f"pair-{pair:03d}".ljust(64, "0")
        for judge in rng.sample(JUDGES, rng.randint(1, 3)):
            batch_id = rng.choice(batch_choices)
            values: dict[str, Any] = {
                "label_key": f"{key[:20]}-{judge}",
                "pair_key": key,
                "prompt": f"prompt {pair}",
                "response_a": "a",
                "response_b": "b",
                "judge": judge,
                "judge_spec": judge,
                "judge_config": {},
                "template_version": "v1",
                "batch_id": batch_id,
                "status": "pending",
            }
            made.append((await comparisons.insert_if_absent(session, values), key, judge, batch_id))
    return World(made, batches)


def _run_rows(comparison_id: uuid.UUID, judge: str, rng: random.Random) -> comparisons.RunRows:
    disagreement = None if judge == "solo" else rng.choice(SPLITS)
    verdict = {
        "winner": rng.choice(["a", "b", "tie"]),
        "rationale": "",
        "length_a": 1,
        "length_b": 1,
        "disagreement": disagreement,
    }
    return comparisons.RunRows(comparison_id, verdict, [], "labeled", None)


async def _step(session: AsyncSession, world: World, rng: random.Random) -> str:
    """One random write through the store's functions; returns what it did."""
    kind = rng.choices(["judge", "review", "import", "undo"], weights=[4, 2, 2, 3])[0]
    if kind == "judge":  # new verdicts, or a pair judged again (the newest supersedes)
        chosen = rng.sample(world.comparisons, rng.randint(1, 4))
        await comparisons.write_runs(session, [_run_rows(c, j, rng) for c, _, j, _ in chosen])
        return f"judge {len(chosen)}"
    if kind == "review":  # a human's review of one comparison (its pair key too)
        comparison_id, key, _, _ = rng.choice(world.comparisons)
        values = {
            "pair_key": key,
            "dedupe_key": uuid.uuid4().hex,
            "winner": "a",
            "source": "review",
            "comparison_id": comparison_id,
            "created_at": utcnow(),
        }
        await gold.add_review(session, values)
        return "review"
    if kind == "import":  # gold labels by pair key alone, a repeated row in the file
        keys = [key for _, key, _, _ in rng.sample(world.comparisons, rng.randint(1, 3))]
        await gold.insert_imports(session, _imported([*keys, keys[0]], "b"))
        return "import"
    labels = (await session.scalars(select(GoldLabel.id))).all()
    if not labels:
        return "undo (nothing)"
    await review_queues.delete_gold(session, rng.choice(labels))  # an undone answer
    return "undo"


@dataclass(frozen=True)
class Stored:
    """Every row the queue's meaning depends on, read back."""

    verdicts: list[tuple[int, uuid.UUID, float | None]]
    comparisons: dict[uuid.UUID, tuple[str | None, str, uuid.UUID | None]]
    gold: list[tuple[uuid.UUID | None, str]]
    pending: list[int]


async def _stored(session: AsyncSession) -> Stored:
    verdicts = (
        await session.execute(select(Verdict.id, Verdict.comparison_id, Verdict.disagreement))
    ).all()
    rows = await session.execute(
        select(Comparison.id, Comparison.pair_key, Comparison.judge, Comparison.batch_id)
    )
    labels = (await session.execute(select(GoldLabel.comparison_id, GoldLabel.pair_key))).all()
    pending = (await session.scalars(select(ReviewPending.verdict_id))).all()
    return Stored(
        [tuple(v) for v in verdicts],  # type: ignore[misc]
        {cid: (key, judge, batch) for cid, key, judge, batch in rows.all()},
        [tuple(g) for g in labels],  # type: ignore[misc]
        sorted(pending),
    )


def expected_queue(stored: Stored, filters: QueueFilters) -> list[int]:
    """The queue as defined: current jury verdicts at the threshold, filtered, oldest first."""
    newest: dict[uuid.UUID, int] = {}
    for verdict_id, cid, _ in stored.verdicts:
        newest[cid] = max(verdict_id, newest.get(cid, 0))
    gold_pairs = {key for _, key in stored.gold}
    gold_comparisons = {cid for cid, _ in stored.gold if cid is not None}
    found = []
    for verdict_id, cid, disagreement in stored.verdicts:
        key, judge, batch = stored.comparisons[cid]
        reviewed = key in gold_pairs or cid in gold_comparisons
        if (
            disagreement is not None
            and disagreement >= filters.min_disagreement
            and newest[cid] == verdict_id
            and (filters.include_reviewed or not reviewed)
            and filters.judge in (None, judge)
            and filters.batch_id in (None, batch)
        ):
            found.append(verdict_id)
    return sorted(found)


async def _pages(database: Database, filters: QueueFilters, limit: int) -> list[int]:
    seen: list[int] = []
    after: int | None = None
    while True:
        async with database.transaction() as session:
            found = await review_queue(session, filters, after=after, limit=limit)
        seen += [verdict.id for _, verdict in found]
        if len(found) < limit:
            return seen
        after = found[-1][1].id


def _filters(world: World, rng: random.Random) -> list[QueueFilters]:
    threshold = rng.choice(THRESHOLDS)
    return [
        QueueFilters(threshold),
        QueueFilters(threshold, judge=rng.choice(JUDGES)),
        QueueFilters(threshold, batch_id=rng.choice(world.batches)),
        QueueFilters(threshold, judge="jury-a", batch_id=rng.choice(world.batches)),
        QueueFilters(threshold, include_reviewed=True),
        QueueFilters(0.0),  # unanimous juries too: not the work list's
    ]


async def _check(database: Database, world: World, rng: random.Random, step: str) -> None:
    async with database.transaction() as session:
        stored = await _stored(session)
    # The work list is exact here (no writes race): every current split unreviewed verdict.
    assert stored.pending == expected_queue(stored, QueueFilters(1e-9)), step
    for filters in _filters(world, rng):
        want = expected_queue(stored, filters)
        for limit in (1, 3, 50):
            assert await _pages(database, filters, limit) == want, (step, filters, limit)


@pytest.mark.parametrize("script_seed", [1, 2])
def test_queue_follows_every_write(database_url: str, script_seed: int) -> None:
    """After each write of a random script the queue equals its definition, page by page."""
    rng = random.Random(script_seed)

    async def script(database: Database) -> None:
        async with database.transaction() as session:
            world = await _make_world(session, rng, pairs=10)
        for n in range(40):
            async with database.transaction() as session:
                step = await _step(session, world, rng)
            await _check(database, world, rng, f"step {n}: {step}")

    _run(database_url, script)


def test_stale_rows_are_checked_not_trusted(database_url: str) -> None:
    """Rows the writes did not remove (a race) are left out of the queue by its own checks."""

    async def work(database: Database) -> None:
        rng = random.Random(3)
        async with database.transaction() as session:
            world = await _make_world(session, rng, pairs=6)
            ids = [c for c, _, j, _ in world.comparisons if j != "solo"][:3]
            assert len(ids) == 3
            for cid in ids[:2]:
                run = _run_rows(cid, "jury-a", rng)
                assert run.verdict is not None
                run.verdict["disagreement"] = 0.5
                await comparisons.write_runs(session, [run])
            rows = (await session.execute(select(ReviewPending))).scalars().all()
            snapshot = [
                {c.key: getattr(row, c.key) for c in ReviewPending.__table__.columns}
                for row in rows
            ]
            # Supersede one, review the other; then put their old rows back as a race would.
            run = _run_rows(ids[0], "jury-a", rng)
            assert run.verdict is not None
            run.verdict["disagreement"] = 0.0
            await comparisons.write_runs(session, [run])
            key = world.comparisons[[c for c, *_ in world.comparisons].index(ids[1])][1]
            await gold.insert_imports(session, _imported([key], "a"))
            await session.execute(delete(ReviewPending))
            await session.execute(insert(ReviewPending), snapshot)
            # A split verdict after them: a page of one passes over both to reach it.
            run = _run_rows(ids[2], "jury-a", rng)
            assert run.verdict is not None
            run.verdict["disagreement"] = 0.5
            await comparisons.write_runs(session, [run])
        async with database.transaction() as session:
            stored = await _stored(session)
        assert len(stored.pending) == 3
        want = expected_queue(stored, QueueFilters(0.3))
        assert len(want) == 1
        for limit in (1, 2, 10):
            assert await _pages(database, QueueFilters(0.3), limit) == want, limit

    _run(database_url, work)


def _imported(pair_keys: list[str], winner: str) -> list[dict[str, Any]]:
    """Gold label rows as an import file gives them: by pair key alone, each its own row."""
    return [
        {
            "pair_key": key,
            "dedupe_key": uuid.uuid4().hex,
            "winner": winner,
            "source": "import",
            "comparison_id": None,
            "created_at": utcnow(),
        }
        for key in pair_keys
    ]


def _executed_scans(database_url: str, statement: str, parameters: Any) -> list[tuple[str, int]]:
    """(table, times its scan ran) of every scan in the statement's executed plan (PostgreSQL)."""
    import psycopg

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        row = connection.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
        plan = row.fetchone()
    assert plan is not None
    found: list[tuple[str, int]] = []

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.append((node["Relation Name"], node["Actual Loops"]))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0][0]["Plan"])
    return found


def test_an_exhausted_queue_reads_no_verdict(database_url: str) -> None:
    """Every split reviewed: the work list is empty, and the queue's one statement reads it
    alone (the verdicts, comparisons and gold labels are only its rows' checks)."""
    sent: list[tuple[str, Any]] = []

    async def work(database: Database) -> None:
        rng = random.Random(4)
        async with database.transaction() as session:
            world = await _make_world(session, rng, pairs=6)
            runs = [_run_rows(c, j, rng) for c, _, j, _ in world.comparisons]
            for run in runs:
                if run.verdict is not None and run.verdict["disagreement"] is not None:
                    run.verdict["disagreement"] = 0.5
            await comparisons.write_runs(session, runs)
            assert (await _stored(session)).pending
            keys = sorted({key for _, key, _, _ in world.comparisons})
            await gold.insert_imports(session, _imported(keys, "a"))
        async with database.transaction() as session:
            assert (await _stored(session)).pending == []

        def record(*args: Any) -> None:
            sent.append((args[2], args[3]))

        engine = database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            assert await _pages(database, QueueFilters(0.3), 50) == []
        finally:
            event.remove(engine, "before_cursor_execute", record)

    _run(database_url, work)
    selects = [(sql, params) for sql, params in sent if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, selects  # no second statement: no page to load
    statement, parameters = selects[0]
    if database_url.startswith("sqlite"):
        plan = explain(database_url, statement, parameters).text.splitlines()
        scans = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
        assert "review_pending" in scans[0], plan
        assert not any(
            step.startswith(("SCAN verdicts", "SCAN gold_labels", "SCAN comparisons"))
            for step in plan
        ), plan
        return
    reads = _executed_scans(database_url, statement, parameters)
    assert [table for table, _ in reads if table == "review_pending"], reads
    assert all(loops == 0 for table, loops in reads if table != "review_pending"), reads


def _expected_from_database(database_url: str) -> tuple[list[int], list[int]]:
    async def read(database: Database) -> Stored:
        async with database.transaction() as session:
            return await _stored(session)

    stored = _run(database_url, read)
    return stored.pending, expected_queue(stored, QueueFilters(1e-9))


def test_bulk_loaded_rows_are_filled_by_refill(database_url: str) -> None:
    """bench.seed loads rows around the writes; refill makes the work list from them."""
    seed(database_url, 200, batch_rows=50, jury=1.0, gold=0.5, text_chars=(10, 20))

    async def fill(database: Database) -> None:
        async with database.transaction() as session:
            await review_pending.refill(session)

    _run(database_url, fill)
    pending, expected = _expected_from_database(database_url)
    assert expected  # the seed made unreviewed splits
    assert pending == expected


def test_migration_fills_the_work_list(database_url: str) -> None:
    """Migration 0026 fills the table from the verdicts and gold labels already stored."""
    seed(database_url, 200, batch_rows=50, jury=1.0, gold=0.5, text_chars=(10, 20))
    migrate.downgrade(database_url, "0025")
    migrate.upgrade(database_url)
    pending, expected = _expected_from_database(database_url)
    assert expected
    assert pending == expected
