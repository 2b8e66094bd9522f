"""Latency of serving the next review item from a queue of 100,000 pairs on PostgreSQL.

A scratch database (or the one in --database-url) is migrated, then bulk-seeded
in SQL: N comparisons with a verdict, one queue holding all of them, and a
head start (the first --pre-answered items already answered by the first
reviewer; with overlap 2 they stay open for the others, so serving that
reviewer must look past them). Then --reviewers reviewers, each a separate
process with its own connection (as separate browsers hit separate server
workers), ask for their next item and answer it, one after the other,
--requests times in all.

What is measured is the server's side of serving: the wall time of one
``next_item`` transaction (claim, lease, the pair read; commit included) in
the process doing it, and the same plus the progress counts the page's
item view shows. HTTP parsing and rendering are not included. The
statements one next_item sends are counted too, and the load average is
printed, since the reviewers, PostgreSQL and anything else share the CPUs.

    python -m bench.review_queue --items 100000 --reviewers 8 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
import uuid

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from app.labeling.review import queues
from app.store import migrate, review_queues
from app.store.db import Database, sync_url

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

SEED = """
INSERT INTO comparisons (id, label_key, pair_key, prompt, response_a, response_b, judge,
    judge_spec, judge_config, template_version, status, created_at, updated_at)
SELECT md5('c' || n)::uuid, md5('l' || n), md5('p' || n), to_jsonb('prompt ' || n),
    to_jsonb('answer A ' || n), to_jsonb('answer B ' || n), 'judge-1', 'judge-1', '{}'::jsonb,
    't1', 'labeled', now() + n * interval '1 millisecond', now()
FROM generate_series(1, :items) AS n;
INSERT INTO verdicts (comparison_id, winner, confidence, position_consistent, rationale,
    length_a, length_b, disagreement, created_at)
SELECT md5('c' || n)::uuid, 'a', 0.5, true, '', 10, 10, 0.5, now()
FROM generate_series(1, :items) AS n;
INSERT INTO review_queues (id, name, kind, params, overlap, guidelines, show_machine, items,
    created_at)
VALUES (:queue, 'bench', 'disagreement', '{}'::jsonb, :overlap, '# Guide', false, :items, now());
INSERT INTO review_items (queue_id, comparison_id, pair_key, answers, done)
SELECT :queue, md5('c' || n)::uuid, md5('p' || n), 0, false
FROM generate_series(1, :items) AS n ORDER BY n;
INSERT INTO review_assignments (item_id, queue_id, reviewer, shown_order, state, choice, winner,
    answered_at, created_at)
SELECT id, :queue, 'reviewer-0', 'ab', 'answered', 'left', 'a', now(), now()
FROM review_items WHERE queue_id = :queue ORDER BY id LIMIT :pre;
UPDATE review_items SET answers = 1 WHERE id IN (
    SELECT item_id FROM review_assignments WHERE queue_id = :queue);
ANALYZE;
"""


def scratch_database() -> tuple[str, str]:
    name = f"referee_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, str(make_url(ADMIN_URL).set(database=name))


def drop_database(name: str) -> None:
    admin = create_engine(make_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(url: str, queue_id: uuid.UUID, items: int, overlap: int, pre: int) -> float:
    engine = create_engine(sync_url(url))
    started = time.perf_counter()
    with engine.begin() as connection:
        for statement in filter(str.strip, SEED.split(";")):
            values = {"items": items, "queue": queue_id, "overlap": overlap, "pre": pre}
            connection.execute(text(statement), values)
    engine.dispose()
    return time.perf_counter() - started


async def serve(url: str, queue_id: uuid.UUID, name: str, requests: int) -> dict[str, list[float]]:
    """One reviewer, one connection: next item, answer, again; server-side times in seconds."""
    db = Database(url, pool_size=1)
    statements = [0]

    def count(*_: object) -> None:
        statements[0] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    found: dict[str, list[float]] = {"next": [], "page": [], "statements": []}
    try:
        for _ in range(requests):
            statements[0] = 0
            started = time.perf_counter()
            async with db.transaction() as session:
                served = await queues.next_item(session, queue_id, name)
            found["next"].append(time.perf_counter() - started)
            found["statements"].append(statements[0])
            if served is None:
                break
            started = time.perf_counter()
            async with db.transaction() as session:
                await queues.next_item(session, queue_id, name)  # the lease held: a reload
                await review_queues.progress(session, queue_id, name)
            found["page"].append(time.perf_counter() - started)
            async with db.transaction() as session:
                await queues.answer(session, served.assignment_id, name, "left")
    finally:
        await db.dispose()
    return found


def reviewer_process(job: tuple[str, uuid.UUID, str, int]) -> dict[str, list[float]]:
    return asyncio.run(serve(*job))


def percentiles(seconds: list[float]) -> str:
    ms = sorted(t * 1000 for t in seconds)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    return f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--pre-answered", type=int, default=20_000)
    parser.add_argument("--reviewers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database-url", help="A PostgreSQL database to use (default: scratch).")
    args = parser.parse_args()

    name, url = (None, args.database_url) if args.database_url else scratch_database()
    try:
        migrate.upgrade(url)
        queue_id = uuid.uuid4()
        seconds = seed(url, queue_id, args.items, args.overlap, args.pre_answered)
        print(
            f"seeded {args.items} items (k={args.overlap}, {args.pre_answered} pre-answered)"
            f" in {seconds:.1f} s"
        )
        share = args.requests // args.reviewers
        jobs = [(url, queue_id, f"reviewer-{i}", share) for i in range(args.reviewers)]
        with multiprocessing.get_context("spawn").Pool(args.reviewers) as pool:
            results = pool.map(reviewer_process, jobs)
        load = os.getloadavg()
    finally:
        if name is not None:
            drop_database(name)
    merged = {key: [t for found in results for t in found[key]] for key in results[0]}
    print(
        f"next item: {len(merged['next'])} requests by {args.reviewers} reviewer processes,"
        f" one after the other in each; {percentiles(merged['next'])};"
        f" {statistics.median(merged['statements']):.0f} statements a call"
    )
    print(
        f"next item (a reload) + progress counts, as the page's item view: {percentiles(merged['page'])}"
    )
    print(
        f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
