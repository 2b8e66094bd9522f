"""Indexes that hold: the hot queries of routes and commands, planned on a seeded database.

Each case runs the real code path (a store function, an export reader)
against a database seeded by bench.seed, records every statement it sends
(``before_cursor_execute``: the SQL and parameters as the driver gets them),
and asks the database for the plan of each: ``EXPLAIN (FORMAT JSON)`` on
PostgreSQL after ``ANALYZE``, ``EXPLAIN QUERY PLAN`` on SQLite. A case fails
when a large table is read whole (PostgreSQL ``Seq Scan``, SQLite ``SCAN t``
without an index) where an index should serve. Whole-table reads a case
needs by its nature (an export or report of everything) are listed with it.

The workflow cases (generation, selection, rounds, rewards) are a table:
each entry names the store function that sends the statements, the
seeded rows it looks up (tests/plans_workflow_seed.py, on the same
database) and the plan shapes it must not have.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.store import batches, comparisons, generation, reports, rewards, rounds, selection
from app.store import review_queue as review_queue_store
from app.store.comparisons import ComparisonFilters
from app.store.db import Database
from app.store.exports import Reader, VerdictQuery, read_engine
from app.store.models import Batch, Comparison, Verdict
from app.store.models_review import ReviewPending
from app.store.review_queue import QueueFilters
from bench.seed import seed
from tests.conftest import POSTGRES_ADMIN_URL, SKIP_POSTGRES
from tests.plans_workflow_seed import WORKFLOW_TABLES, Workflow, seed_workflow

# Enough rows that an index beats a scan by far (the planner knows the sizes from ANALYZE).
COMPARISONS = 40_000
# Batches of 200 comparisons: a batch is 0.5% of the table, so an index must serve it.
BATCH_ROWS = 200
# A third of the pairs judged by juries, so jury votes are a large table too.
JURY_SHARE = 0.3
LARGE_TABLES = (
    frozenset({"comparisons", "verdicts", "judge_calls", "gold_labels", "jury_votes"})
    | WORKFLOW_TABLES
)

Captured = list[tuple[str, Any]]


@dataclass(slots=True)
class Seeded:
    url: str
    batch_id: uuid.UUID
    judge: str
    cursor: tuple[Any, uuid.UUID]
    """A (created_at, id) keyset cursor a third of the way in: a deep page."""
    verdict_after: int
    """A verdict id half-way: a review-queue cursor."""
    workflow: Workflow
    plans: dict[str, list[str]] = field(default_factory=dict)


def _fill_review_pending(engine: Engine) -> None:
    """The review queue's work list as writes racing could leave it: a row for every split
    verdict, reviewed pairs' too (the seed reviews every pair, so the writes would leave it
    empty), so the queue's ordered read of it is planned over thousands of rows."""
    columns = ["verdict_id", "comparison_id", "pair_key", "judge", "batch_id", "disagreement"]
    rows = (
        select(
            Verdict.id,
            Verdict.comparison_id,
            Comparison.pair_key,
            Comparison.judge,
            Comparison.batch_id,
            Verdict.disagreement,
        )
        .join(Comparison, Comparison.id == Verdict.comparison_id)
        .where(Verdict.disagreement > 0)
    )
    with engine.begin() as connection:
        connection.execute(insert(ReviewPending).from_select(columns, rows))
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("ANALYZE review_pending"))
            connection.commit()


def _facts(url: str) -> Seeded:
    engine = create_engine(url)
    workflow = seed_workflow(engine)
    _fill_review_pending(engine)
    with engine.connect() as connection:
        batch_id, judge = connection.execute(
            select(Batch.id, Batch.judge).order_by(Batch.name).limit(1).offset(3)
        ).one()
        cursor = connection.execute(
            select(Comparison.created_at, Comparison.id)
            .order_by(Comparison.created_at, Comparison.id)
            .offset(COMPARISONS // 3)
            .limit(1)
        ).one()
        after = connection.execute(
            select(Verdict.id).order_by(Verdict.id).offset(COMPARISONS // 2).limit(1)
        ).scalar_one()
    engine.dispose()
    return Seeded(url, batch_id, judge, (cursor[0], cursor[1]), int(after), workflow)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    """A migrated database of COMPARISONS comparisons with verdicts, calls, juries and gold."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'referee.db'}"
        seed(url, COMPARISONS, batch_rows=BATCH_ROWS, jury=JURY_SHARE, text_chars=(40, 80))
        yield _facts(url)
        return
    if SKIP_POSTGRES:
        pytest.skip("REFEREE_TEST_SKIP_POSTGRES=1")
    admin_url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg")
    name = f"referee_plans_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        seed(url, COMPARISONS, batch_rows=BATCH_ROWS, jury=JURY_SHARE, text_chars=(40, 80))
        yield _facts(url)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- capturing what the code sends ---------------------------------------------------------------


def _recording(engine: Engine, captured: Captured) -> Callable[[], None]:
    def record(
        _connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        if not many and statement.lstrip().upper().startswith(
            ("SELECT", "UPDATE", "DELETE", "WITH")
        ):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    return lambda: event.remove(engine, "before_cursor_execute", record)


def run_async(url: str, work: Callable[[AsyncSession], Awaitable[Any]]) -> Captured:
    """Statements ``work`` sends inside one transaction (rolled back: plans only)."""
    captured: Captured = []

    async def go() -> None:
        database = Database(url)
        stop = _recording(database.engine.sync_engine, captured)
        try:
            async with database.sessions() as session:
                try:
                    await work(session)
                finally:
                    await session.rollback()
        finally:
            stop()
            await database.dispose()

    asyncio.run(go())
    return captured


def run_reader(url: str, work: Callable[[Reader], Iterator[Any]]) -> Captured:
    """Statements an export reader sends for ``work`` (its first rows are read)."""
    captured: Captured = []
    engine = read_engine(url)
    stop = _recording(engine, captured)
    try:
        with Reader(engine, chunk_rows=100) as reader:
            list(islice(work(reader), 10))
    finally:
        stop()
        engine.dispose()
    return captured


def run_sync(url: str, work: Callable[[Connection], Any]) -> Captured:
    """Statements ``work`` sends on a plain connection (rolled back: plans only)."""
    captured: Captured = []
    engine = create_engine(url)
    stop = _recording(engine, captured)
    try:
        with engine.connect() as connection:
            work(connection)
            connection.rollback()
    finally:
        stop()
        engine.dispose()
    return captured


# -- reading plans ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    text: str
    whole: set[str]
    """Large tables the plan reads whole."""
    sorts: bool
    """Whether the plan sorts (PostgreSQL Sort, SQLite a temporary B-tree for ORDER BY)."""


def explain(url: str, statement: str, parameters: Any) -> Plan:
    """The plan of a statement as the code sent it."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_plan(url, statement, parameters)
    return _postgres_plan(url, statement, parameters)


def _postgres_plan(url: str, statement: str, parameters: Any) -> Plan:
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        plan = connection.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters).fetchone()
    assert plan is not None
    scans: set[str] = set()
    lines: list[str] = []
    sorts = False

    def walk(node: dict[str, Any], depth: int) -> None:
        relation = node.get("Relation Name")
        lines.append(
            f"{'  ' * depth}{node['Node Type']} {relation or ''} {node.get('Index Name', '')}"
        )
        if "Seq Scan" in node["Node Type"] and relation in LARGE_TABLES:
            scans.add(relation)
        if "Sort" in node["Node Type"]:
            nonlocal sorts
            sorts = True
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(plan[0][0]["Plan"], 0)
    return Plan("\n".join(lines), scans, sorts)


def _sqlite_plan(url: str, statement: str, parameters: Any) -> Plan:
    database = make_url(url).database
    assert database
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    finally:
        connection.close()
    scans: set[str] = set()
    for _id, _parent, _unused, detail in rows:
        words = detail.split()
        # "SCAN verdicts" reads the table; "SCAN t USING [COVERING] INDEX …" walks an index
        # in order (a LIMIT stops it early); "SEARCH" is an index look-up.
        if words[0] == "SCAN" and "USING" not in words and words[1] in LARGE_TABLES:
            scans.add(words[1])
    details = [row[3] for row in rows]
    sorts = any("TEMP B-TREE FOR ORDER BY" in detail for detail in details)
    return Plan("\n".join(details), scans, sorts)


# -- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    run: Callable[[Seeded], Captured]
    whole: frozenset[str] = frozenset()
    """Large tables this query reads whole by its nature (an export of everything)."""
    ordered: bool = False
    """A page in index order: its first statement must not sort (a LIMIT after a sort
    of every matching row grows with the table)."""


Work = Callable[[Seeded, AsyncSession], Awaitable[Any]]
NO_TABLES: frozenset[str] = frozenset()


def _async_case(name: str, work: Work, whole: frozenset[str] = NO_TABLES, **kw: Any) -> Case:
    return Case(name, lambda s: run_async(s.url, lambda session: work(s, session)), whole, **kw)


def _reader_case(
    name: str, work: Callable[[Seeded, Reader], Iterator[Any]], whole: frozenset[str] = NO_TABLES
) -> Case:
    return Case(name, lambda s: run_reader(s.url, lambda reader: work(s, reader)), whole)


def _page(filters: ComparisonFilters, deep: bool = False) -> Work:
    return lambda s, db: comparisons.page(db, filters, after=s.cursor if deep else None, limit=50)


def _claim(of_batch: bool) -> Work:
    return lambda s, db: batches.claim(
        db, s.batch_id if of_batch else None, "plans", 64, timedelta(minutes=5)
    )


def _queue(later: bool, include_reviewed: bool = False) -> Work:
    filters = QueueFilters(0.3, include_reviewed=include_reviewed)
    return lambda s, db: review_queue_store.review_queue(
        db, filters, after=s.verdict_after if later else None, limit=50
    )


CASES = [
    # GET /v1/comparisons: first page, a deep page, and each filter.
    _async_case("comparisons page", _page(ComparisonFilters()), ordered=True),
    _async_case("comparisons deep page", _page(ComparisonFilters(), deep=True), ordered=True),
    _async_case("comparisons by judge", _page(ComparisonFilters(judge="openai:gpt-5-mini"), True)),
    _async_case(
        "comparisons by batch",
        lambda s, db: _page(ComparisonFilters(batch_id=s.batch_id))(s, db),
        ordered=True,
    ),
    _async_case("comparisons pending", _page(ComparisonFilters(status="pending"))),
    _async_case("comparisons by winner", _page(ComparisonFilters(winner="a"), deep=True)),
    _async_case("comparison by id", lambda s, db: comparisons.get(db, s.cursor[1])),
    # Workers: claim the oldest pending pairs (of any batch, of one batch).
    _async_case("claim pending pairs", _claim(of_batch=False), ordered=True),
    _async_case("claim pending pairs of a batch", _claim(of_batch=True), ordered=True),
    _async_case("batch status counts", lambda s, db: batches.status_counts(db, s.batch_id)),
    # GET /v1/reviews/queue: split juries, first and later pages.
    _async_case("review queue", _queue(later=False), ordered=True),
    _async_case("review queue later page", _queue(later=True), ordered=True),
    _async_case(
        "review queue with reviewed pairs", _queue(later=False, include_reviewed=True), ordered=True
    ),
    # Exports: everything is a whole read; a batch's is not.
    _reader_case(
        "export everything",
        lambda s, r: r.verdicts(VerdictQuery()),
        whole=frozenset({"comparisons", "verdicts"}),
    ),
    _reader_case("export a batch", lambda s, r: r.verdicts(VerdictQuery(batch_ids=(s.batch_id,)))),
    # Reports of one batch (a report of everything reads everything).
    _async_case(
        "report cells of a batch",
        lambda s, db: reports.cells(db, reports.Scope(batch_id=s.batch_id), 10),
    ),
    _async_case(
        "report costs of a batch",
        lambda s, db: reports.call_costs(db, reports.Scope(batch_id=s.batch_id)),
    ),
]


# -- the workflow lookups: generation, selection, rounds, rewards ------------------------------

SessionLookup = Callable[[Workflow, AsyncSession], Awaitable[Any]]
ConnectionLookup = Callable[[Workflow, Connection], Any]
LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A table entry: the store function's call on the seeded rows, and the forbidden shapes."""

    name: str
    call: SessionLookup | None = None
    on_connection: ConnectionLookup | None = None
    """For the functions that stream on a plain connection (exports)."""
    whole: frozenset[str] = NO_TABLES
    """Large tables it may read whole (none: every large table must be read by an index)."""
    ordered: bool = False
    """A page or claim in index order: its first statement must not sort."""

    def case(self) -> Case:
        call, on_connection = self.call, self.on_connection
        if call is not None:
            return _async_case(
                self.name, lambda s, db: call(s.workflow, db), self.whole, ordered=self.ordered
            )
        assert on_connection is not None
        return Case(
            self.name,
            lambda s: run_sync(s.url, lambda c: on_connection(s.workflow, c)),
            self.whole,
            ordered=self.ordered,
        )


def _first_rows(rows: Iterator[Any]) -> list[Any]:
    return list(islice(rows, 10))


LOOKUPS = [
    # Rewards: the stored labels a request reuses, and a run's export.
    Lookup("rewards: ratings by label key", lambda w, db: rewards.rated(db, w.rating_keys)),
    Lookup(
        "rewards: comparisons by label key", lambda w, db: rewards.judged(db, w.comparison_keys)
    ),
    Lookup(
        "rewards: a run's items",
        on_connection=lambda w, c: _first_rows(rewards.run_items(c, w.reward_run, 100)),
    ),
    # Generation: the worker's claims and leases, the status and the candidates' pages.
    Lookup("generation by name", lambda w, db: generation.get_by_name(db, "generation-020")),
    Lookup(
        "generation: claim pending samples",
        lambda w, db: generation.claim(db, w.drawing_id, "plans", 64, LEASE),
        ordered=True,
    ),
    Lookup(
        "generation: samples leased to a worker",
        lambda w, db: generation.leased_to(db, w.lease_owner),
    ),
    Lookup(
        "generation: lease owners of a generation",
        lambda w, db: generation.generation_lease_owners(db, w.drawing_id, "host:1:"),
    ),
    Lookup("generation: release leases", lambda w, db: generation.release(db, [w.lease_owner])),
    Lookup(
        "generation: status counts", lambda w, db: generation.status_counts(db, w.generation_id)
    ),
    Lookup("generation: total cost", lambda w, db: generation.total_cost(db, w.generation_id)),
    Lookup(
        "generation: candidate count",
        lambda w, db: generation.candidate_count(db, w.generation_id),
    ),
    Lookup("generation: prompt count", lambda w, db: generation.prompt_count(db, w.generation_id)),
    Lookup(
        "generation: drawn by prompt key",
        lambda w, db: generation.drawn_by_prompt_key(db, w.generation_id),
    ),
    Lookup(
        "generation: a page of prompts with candidates",
        lambda w, db: generation.candidates_by_prompt(db, w.drawing_id, offset=0, limit=50),
        ordered=True,
    ),
    Lookup(
        "generation: samples by prompt",
        lambda w, db: generation.samples_by_prompt(db, w.prompt_ids),
    ),
    # Selection: a generation's runs, a run's decisions and counts, its preference pairs.
    Lookup(
        "selection: runs of a generation",
        lambda w, db: selection.runs_for_generation(db, w.generation_id),
    ),
    Lookup("selection: decided prompts", lambda w, db: selection.decided(db, w.run_id)),
    Lookup("selection: counts", lambda w, db: selection.counts(db, w.run_id)),
    Lookup("selection: preferences", lambda w, db: selection.preferences(db, w.run_id)),
    # Rounds: by name, the lineage, the matchups and what they were judged.
    Lookup("round by name", lambda w, db: rounds.get_by_name(db, w.round_name)),
    Lookup("rounds: lineage rows", on_connection=lambda w, c: rounds.lineage_rows(c, w.round_name)),
    Lookup(
        "rounds: representative answers",
        lambda w, db: rounds.representative_answers(db, w.generation_id),
    ),
    Lookup(
        "rounds: comparison ids by label key",
        lambda w, db: rounds.comparison_ids(db, w.comparison_keys),
    ),
    Lookup("rounds: matchup keys", lambda w, db: rounds.matchup_keys(db, w.round_id)),
    Lookup("rounds: matchup outcomes", lambda w, db: rounds.matchup_outcomes(db, w.round_id)),
    Lookup(
        "rounds: selected pairs of a run",
        on_connection=lambda w, c: _first_rows(rounds.selected_pairs(c, w.run_id, 100)),
    ),
]
CASES += [lookup.case() for lookup in LOOKUPS]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hot_queries_use_indexes(seeded: Seeded, case: Case) -> None:
    captured = case.run(seeded)
    assert captured, f"{case.name}: no statement was sent"
    failures = []
    for number, (statement, parameters) in enumerate(captured):
        plan = explain(seeded.url, statement, parameters)
        if plan.whole - case.whole:
            failures.append(f"{sorted(plan.whole - case.whole)} read whole by")
        if case.ordered and number == 0 and plan.sorts:
            failures.append("a page sorted instead of read in index order by")
        if failures and not failures[-1].endswith("plan:"):
            failures[-1] += f"\n{statement}\nplan:\n{plan.text}"
    assert not failures, f"{case.name}:\n" + "\n\n".join(failures)
