"""Queries behind the judge-quality report: GROUP BY counts of comparisons, gold, costs.

Functions take a session inside a transaction someone else owns; none of
them commits. Each returns aggregated rows, as many as there are distinct
combinations of the facts counted, however many comparisons there are (the
database does the counting, so a report's memory stays flat); the statistics
are app.reports'.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    Subquery,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.functions import FunctionElement

from app.store.comparisons import is_current_verdict
from app.store.models import Batch, Comparison, GoldLabel, JudgeCall, Verdict
from app.store.models_rewards import RewardItem


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
class Cell:
    """One GROUP BY row of the report's counting: how many comparisons share all these facts.

    The facts are those the report's metrics are counts of, so any group the
    report shows (a judge, a batch and its judge, a template) is a sum of cells.
    """

    judge: str
    batch_id: uuid.UUID | None
    template: str
    status: str
    winner: str | None
    """The current verdict's winner; None without a verdict."""
    gold: str | None
    """The winner of the gold label that counts for the pair (see :func:`counting_gold`)."""
    consistent: bool | None
    """The current verdict's position consistency."""
    lean: str | None
    """For a verdict whose orders disagreed and whose calls name positions: ``first`` when
    they picked the first-shown response more often than the second, else ``other``."""
    longer: str | None
    """Which response is longer (a, b); ``same`` for equal lengths, None without a verdict."""
    bin: int | None
    """The calibration bin of the verdict's confidence (None without a confidence)."""
    category: str | None
    """``metadata["category"]`` when it is a non-empty string (MT-Bench, LLMBar subsets)."""
    count: int
    confidence_sum: float
    """The sum of the (clipped to [0, 1]) confidences of the cell's verdicts."""


@dataclass(frozen=True, slots=True)
class CostFacts:
    """Judge calls of one (judge, batch): how many, their summed cost, how many had no price."""

    calls: int
    usd: Decimal
    unpriced: int


class json_string(FunctionElement[str]):
    """``document[key]`` when it is a JSON string, else NULL, on SQLite and PostgreSQL.

    ``->>`` on PostgreSQL turns the number 1 into the text '1'; the report
    counts only what is really a string, as it did reading the documents.
    """

    type = String()
    inherit_cache = True


def json_key(document: ColumnElement[Any] | InstrumentedAttribute[Any], key: str) -> json_string:
    """``json_string`` of one constant key, written into the SQL (not a parameter)."""
    return json_string(document, literal_column("'" + key.replace("'", "''") + "'"))


@compiles(json_string, "postgresql")
def _json_string_postgresql(element: json_string, compiler: Any, **kw: Any) -> str:
    document, key = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CASE WHEN jsonb_typeof({document} -> {key}) = 'string' THEN {document} ->> {key} END"


@compiles(json_string, "sqlite")
def _json_string_sqlite(element: json_string, compiler: Any, **kw: Any) -> str:
    document, key = (compiler.process(clause, **kw) for clause in element.clauses)
    path = f"'$.\"' || {key} || '\"'"
    return (
        f"CASE WHEN json_type({document}, {path}) = 'text' "
        f"THEN json_extract({document}, {path}) END"
    )


def counting_gold(scope: Scope, *, sorted_on_postgresql: bool = False) -> Subquery:
    """The gold label that counts for each pair: (pair_key, winner, source).

    A review (a person looking at this very pair in this service) outranks an
    imported label; among several of one kind, the newest counts. Written as
    "no label of the pair ranks above it" (an anti-join, as for the current
    verdict) rather than a ranking window: no sort of every gold label.
    ``sorted_on_postgresql``: on PostgreSQL, the first label of each pair in
    rank order instead (DISTINCT ON, pair keys sorted bytewise): a sort of
    500,000 labels took 1.4 s where the anti-join took 1.9-2.6 s. Not for
    :func:`cells`: through DISTINCT ON the planner loses the winners'
    statistics, guesses far more groups, and sorts a million joined rows
    instead of hashing them. A scoped report looks at the labels of its own
    pairs only.
    """
    rank = case((GoldLabel.source == "review", 1), else_=0)
    if sorted_on_postgresql:
        pair_key = GoldLabel.pair_key.collate("C")
        statement = (
            select(GoldLabel.pair_key, GoldLabel.winner, GoldLabel.source)
            .ext(distinct_on(pair_key))
            .order_by(pair_key, rank.desc(), GoldLabel.created_at.desc(), GoldLabel.id.desc())
        )
    else:
        better = aliased(GoldLabel)
        outranked = exists().where(
            better.pair_key == GoldLabel.pair_key,
            tuple_(case((better.source == "review", 1), else_=0), better.created_at, better.id)
            > tuple_(rank, GoldLabel.created_at, GoldLabel.id),
        )
        statement = select(GoldLabel.pair_key, GoldLabel.winner, GoldLabel.source).where(~outranked)
    if scope.conditions():
        keys = select(Comparison.pair_key).where(*scope.conditions())
        statement = statement.where(GoldLabel.pair_key.in_(keys))
    return statement.subquery("gold")


def _leanings(scope: Scope) -> Subquery:
    """Per current verdict whose orders disagreed: positions its calls named, and their lean.

    Positions are as shown to the judge, so "1" in both orders is a judge
    that went for whichever response came first.
    """
    position = json_key(JudgeCall.parsed, "position")
    statement = (
        select(
            JudgeCall.verdict_id.label("verdict_id"),
            func.sum(case((position == "1", 1), (position == "2", -1), else_=0)).label("lean"),
        )
        .join(Verdict, Verdict.id == JudgeCall.verdict_id)
        .where(Verdict.position_consistent == false(), JudgeCall.error_class.is_(None))
        .group_by(JudgeCall.verdict_id)
        # Tested on the joined calls only (not in WHERE, where PostgreSQL reads
        # the JSON of every call before the join): a verdict leans when its
        # calls named a position.
        .having(func.sum(case((position.in_(("1", "2", "tie")), 1), else_=0)) > 0)
    )
    if scope.conditions():
        # A scoped report reads the calls of its comparisons only.
        statement = statement.join(Comparison, Comparison.id == Verdict.comparison_id).where(
            *scope.conditions()
        )
    return statement.subquery("leanings")


def equal_width_bin(confidence: ColumnElement[float], bins: int) -> ColumnElement[int]:
    """The bin of [0, 1] cut in ``bins`` equal parts that holds a value clipped to [0, 1].

    The same bin as the edges the report shows (index / bins) hold it: a
    cast of confidence * bins is the bin or its neighbour (0.29 * 100 is
    28.999…, and PostgreSQL rounds a cast), so one step each way settles it
    against the edges computed as the report computes them.
    """
    guess = cast(confidence * bins, Integer)
    edge_above = cast(guess + 1, Float) / bins
    edge = cast(guess, Float) / bins
    found = case(
        (edge_above <= confidence, guess + 1),
        (edge > confidence, guess - 1),
        else_=guess,
    )
    return case((found > bins - 1, bins - 1), (found < 0, 0), else_=found)


async def settle_for_counting(session: AsyncSession, *, parallel: bool = True) -> None:
    """Settings for the report's few large aggregations, for this transaction only.

    PostgreSQL: without JIT (compiling these expressions costs seconds and
    saves less on a scan of a million rows) and with a work_mem that keeps
    the hash joins and the gold ranking's sort off temporary files (a few
    of them at once: a bounded amount, not one that grows with the rows).
    ``parallel=False``: no parallel workers, for :func:`cells` when the
    pair-level counts run beside it on a second connection. Its parallel
    plans gather every joined row (a million) into the leader to aggregate
    them: 12-15 CPU-seconds against the serial plan's 7-8 at 1M comparisons.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text("SET LOCAL work_mem = '64MB'"))
        if not parallel:
            await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


async def cells(session: AsyncSession, scope: Scope, bins: int) -> list[Cell]:
    """The report's counting over every comparison in scope, as GROUP BY rows."""
    gold = counting_gold(scope)
    leanings = _leanings(scope)
    clipped = case(
        (Verdict.confidence < 0, 0.0), (Verdict.confidence > 1, 1.0), else_=Verdict.confidence
    )
    longer = case(
        (Verdict.length_a > Verdict.length_b, "a"),
        (Verdict.length_a < Verdict.length_b, "b"),
        (Verdict.length_a == Verdict.length_b, "same"),
    )
    lean = case((leanings.c.lean > 0, "first"), (leanings.c.lean.is_not(None), "other"))
    joined = (
        select(
            Comparison.judge.label("judge"),
            Comparison.batch_id.label("batch_id"),
            Comparison.template_version.label("template"),
            Comparison.status.label("status"),
            Verdict.winner.label("winner"),
            gold.c.winner.label("gold"),
            Verdict.position_consistent.label("consistent"),
            lean.label("lean"),
            longer.label("longer"),
            json_key(Comparison.meta, "category").label("category"),
            clipped.label("confidence"),
        )
        .select_from(Comparison)
        .outerjoin(Verdict, and_(Verdict.comparison_id == Comparison.id, is_current_verdict()))
        .outerjoin(gold, gold.c.pair_key == Comparison.pair_key)
        .outerjoin(leanings, leanings.c.verdict_id == Verdict.id)
        .where(*scope.conditions())
        # OFFSET 0 keeps the database from inlining ``clipped`` into every use
        # in the bin's expression below (a third of the query's time at 1M rows).
        .offset(0)
        .subquery("joined")
    )
    c = joined.c
    facts = select(
        *(c[name] for name in ("judge", "batch_id", "template", "status", "winner", "gold")),
        *(c[name] for name in ("consistent", "lean", "longer")),
        equal_width_bin(c.confidence, bins).label("bin"),
        c.category,
        c.confidence,
    ).subquery("facts")
    # Grouped outside: the expressions above carry parameters (the bins), and
    # PostgreSQL matches a GROUP BY expression to its SELECT one by its text.
    keys = [column for column in facts.c if column.name != "confidence"]
    statement = select(*keys, func.count(), func.sum(facts.c.confidence)).group_by(*keys)
    return [
        Cell(
            judge,
            batch_id,
            template,
            status,
            winner,
            gold_winner,
            consistent,
            leaning,
            longer_one,
            None if bin_ is None else int(bin_),
            category or None,
            int(count),
            float(total or 0.0),
        )
        for (
            judge,
            batch_id,
            template,
            status,
            winner,
            gold_winner,
            consistent,
            leaning,
            longer_one,
            bin_,
            category,
            count,
            total,
        ) in (await session.execute(statement)).all()
    ]


async def judges(session: AsyncSession, scope: Scope) -> list[str]:
    """The judges of the comparisons in scope (read from an index: a fraction of a second)."""
    statement = select(Comparison.judge).where(*scope.conditions()).distinct()
    return sorted(await session.scalars(statement))


@dataclass(frozen=True, slots=True)
class PairCounts:
    """What the report counts per pair (not per comparison) in its scope."""

    gold: list[tuple[str, str, int]]
    """The gold labels that count for the pairs in scope: (winner, source, pairs)."""
    judge_pairs: list[tuple[str, str, str, str, int]]
    """Two judges' winners on the pairs both decided: (judge, judge, winner, winner, pairs)."""


def _bytewise(session: AsyncSession, column: InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    """A text column compared byte by byte: for a sort of a million keys on PostgreSQL.

    Under a locale's collation (even C.UTF-8) PostgreSQL compares text with
    strcoll and without abbreviated keys; under "C" with memcmp on 8-byte
    abbreviations: the window's sort of a million rows below took 0.6 s
    instead of 1.8 s. Equal
    keys are equal bytes either way, so the partitions are the same.
    SQLite compares bytes already (BINARY).
    """
    if session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column.expression


async def pair_counts(session: AsyncSession, scope: Scope, judges: Sequence[str]) -> PairCounts:
    """The gold summary's and the judges' agreement's counts, in one pass over the pairs.

    ``judges``: every judge that may have decided a pair in scope (more do no
    harm). A judge that decided a pair more than once (two batches, two
    templates) counts with its latest decided comparison's verdict. The
    database ranks each pair's comparisons in pair order (decided ones
    first), folds each pair into one row of its judges' winners and its
    counting gold label, and counts the distinct rows: no self-join of the
    comparisons, and as many result rows as there are winner and gold
    patterns. One pass serves both counts (the gold summary had been a scan
    of its own over every pair key in scope).
    """
    names = sorted(set(judges))
    pair_key, judge = _bytewise(session, Comparison.pair_key), _bytewise(session, Comparison.judge)
    order = func.row_number().over(
        partition_by=(pair_key, judge),
        # Decided comparisons first, the latest first, and its newest verdict
        # (the current one) first: rank 1 is the verdict that counts, with no
        # anti-join to find each comparison's current verdict.
        order_by=(
            Verdict.id.is_(None),
            Comparison.created_at.desc(),
            Comparison.id.desc(),
            Verdict.id.desc(),
        ),
    )
    ranked = (
        select(
            pair_key.label("pair_key"),
            judge.label("judge"),
            Verdict.winner.label("winner"),
            order.label("rank"),
        )
        .select_from(Comparison)
        .outerjoin(Verdict, Verdict.comparison_id == Comparison.id)
        .where(Comparison.pair_key.is_not(None), *scope.conditions())
        .subquery("ranked")
    )
    per_pair = (
        select(
            ranked.c.pair_key,
            *(
                func.max(case((ranked.c.judge == name, ranked.c.winner))).label(f"w{index}")
                for index, name in enumerate(names)
            ),
        )
        .where(ranked.c.rank == 1)
        .group_by(ranked.c.pair_key)
        .subquery("per_pair")
    )
    gold = counting_gold(
        scope, sorted_on_postgresql=session.get_bind().dialect.name == "postgresql"
    )
    winners = [per_pair.c[f"w{index}"] for index in range(len(names))]
    keys = [*winners, gold.c.winner, gold.c.source]
    statement = (
        select(*keys, func.count())
        .select_from(per_pair)
        .outerjoin(gold, gold.c.pair_key == per_pair.c.pair_key)
        .group_by(*keys)
    )
    gold_found: Counter[tuple[str, str]] = Counter()
    agreement: list[tuple[str, str, str, str, int]] = []
    for row in await session.execute(statement):
        *judged, gold_winner, gold_source, n = row
        if gold_winner is not None:
            gold_found[gold_winner, gold_source] += int(n)
        decided = [(name, w) for name, w in zip(names, judged, strict=True) if w is not None]
        for index, (first, first_winner) in enumerate(decided):
            for second, second_winner in decided[index + 1 :]:
                agreement.append((first, second, first_winner, second_winner, int(n)))
    return PairCounts(
        [(winner, source, n) for (winner, source), n in gold_found.items()], agreement
    )


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


# -- an online run's rewards (``referee report --run``) -----------------------------------------


@dataclass(frozen=True, slots=True)
class RewardCell:
    """Reward items of one run that share a step, scorer, judge, status and reason."""

    step: int | None
    scorer: str
    judge: str
    status: str
    reason: str | None
    items: int
    scored: int
    score_sum: float
    score_min: float | None
    score_max: float | None


def _clipped(value: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[float]:
    return case((value < 0, 0.0), (value > 1, 1.0), else_=value)


async def reward_cells(session: AsyncSession, run: str) -> list[RewardCell]:
    """A run's reward items counted by step, scorer, judge, status and reason."""
    keys = (
        RewardItem.step,
        RewardItem.scorer,
        RewardItem.judge,
        RewardItem.status,
        RewardItem.reason,
    )
    statement = (
        select(
            *keys,
            func.count(),
            func.count(RewardItem.score),
            func.sum(RewardItem.score),
            func.min(RewardItem.score),
            func.max(RewardItem.score),
        )
        .where(RewardItem.run == run)
        .group_by(*keys)
    )
    return [
        RewardCell(
            step, scorer, judge, status, reason, int(n), int(k), float(total or 0.0), low, high
        )
        for step, scorer, judge, status, reason, n, k, total, low, high in (
            await session.execute(statement)
        )
    ]


async def reward_histogram(
    session: AsyncSession, run: str, bins: int
) -> list[tuple[int | None, int, int]]:
    """A run's scores (clipped to [0, 1]) in equal-width bins per step: (step, bin, items)."""
    facts = (
        select(
            RewardItem.step.label("step"),
            equal_width_bin(_clipped(RewardItem.score), bins).label("bin"),
        )
        .where(RewardItem.run == run, RewardItem.score.is_not(None))
        .subquery("binned")
    )
    statement = select(facts.c.step, facts.c.bin, func.count()).group_by(facts.c.step, facts.c.bin)
    return [(step, int(bin_), int(n)) for step, bin_, n in await session.execute(statement)]


async def reward_scores(
    session: AsyncSession, run: str, by_step: bool
) -> AsyncIterator[tuple[int | None, float]]:
    """A run's scores in order (by step then score, or by score alone), streamed."""
    order = (RewardItem.step, RewardItem.score) if by_step else (RewardItem.score,)
    statement = (
        select(RewardItem.step, RewardItem.score)
        .where(RewardItem.run == run, RewardItem.score.is_not(None))
        .order_by(*order)
        .execution_options(yield_per=10_000)
    )
    async for step, score in await session.stream(statement):
        yield step, float(score or 0.0)  # never None: filtered above


async def reward_costs(session: AsyncSession, run: str) -> tuple[CostFacts, int]:
    """The calls of the labels (ratings, comparisons) behind a run's items, and those labels.

    A label is counted once however many items it scored (identical items are
    scored once); one shared with another run counts in both runs' reports.
    """
    ratings = select(RewardItem.rating_id).where(
        RewardItem.run == run, RewardItem.rating_id.is_not(None)
    )
    comparisons = select(RewardItem.comparison_id).where(
        RewardItem.run == run, RewardItem.comparison_id.is_not(None)
    )
    calls = select(
        func.count(JudgeCall.id),
        func.coalesce(func.sum(JudgeCall.cost_usd), 0),
        func.sum(case((JudgeCall.cost_usd.is_(None), 1), else_=0)),
    ).where(or_(JudgeCall.rating_id.in_(ratings), JudgeCall.comparison_id.in_(comparisons)))
    count, usd, unpriced = (await session.execute(calls)).one()
    labels = select(
        func.count(func.distinct(RewardItem.rating_id))
        + func.count(func.distinct(RewardItem.comparison_id))
    ).where(RewardItem.run == run)
    return CostFacts(int(count), Decimal(usd), int(unpriced or 0)), int(
        await session.scalar(labels) or 0
    )
