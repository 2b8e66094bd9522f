"""Build the judge-quality report: per judge, per batch, and between judges.

The database counts (GROUP BY queries in app.store.reports, one short
transaction); the statistics and bootstrap intervals are computed from
those counts, so memory does not grow with the number of comparisons. The
result is plain JSON (see the README's "Measuring judges").
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFoundError
from app.reports.blocks import INDEX, NO_COST, Evidence, block, grouped
from app.reports.metrics import LABELS, Bootstrap, kappa, proportion
from app.reports.review_agreement import review_agreement
from app.store import reports
from app.store.db import Database
from app.store.models import utcnow
from app.store.reports import Cell, CostFacts, Scope

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What to report on and how: filters, bootstrap settings, calibration bins."""

    judge: str | None = None
    batch: str | None = None
    """A batch's name or id."""
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    calibration_bins: int = 10


async def build_report(database: Database, options: ReportOptions) -> dict[str, Any]:
    """The report over the comparisons the options select; 404 for an unknown batch."""
    async with database.transaction() as session:
        batch_id = None
        if options.batch is not None:
            found = await reports.find_batch(session, options.batch)
            if found is None:
                raise NotFoundError(f"no batch {options.batch!r} (give its name or id)")
            batch_id = found.id
        scope = Scope(options.judge, batch_id)
        # Serial when the pair-level counts run beside it (PostgreSQL).
        await reports.settle_for_counting(session, parallel=database.dialect != "postgresql")
        counting = reports.cells(session, scope, options.calibration_bins)
        if database.dialect == "postgresql":
            # The cells' statement runs on one core (its plan is not a parallel
            # one); the pair-level counts run beside it on a second connection.
            # Nothing is lost in consistency: at READ COMMITTED every statement
            # reads its own snapshot, on one connection as on two.
            # Both run to their end before a failure of either is raised, so
            # no statement is still running when its transaction ends.
            counted_cells, pair_counts = await asyncio.gather(
                counting, _pair_counts_apart(database, scope), return_exceptions=True
            )
            if isinstance(counted_cells, BaseException):
                raise counted_cells
            if isinstance(pair_counts, BaseException):
                raise pair_counts
            cells = counted_cells
            gold, agreement, costs = pair_counts
        else:
            cells = await counting
            gold, agreement, costs = await _pair_counts(session, scope)
        counted = Counted(cells=cells, gold=gold, judge_pairs=agreement, costs=costs)
        batch_ids = {c.batch_id for c in counted.cells if c.batch_id is not None}
        names = await reports.batch_names(session, batch_ids | ({batch_id} if batch_id else set()))
        reviewed = await review_agreement(session, options.bootstrap, scope)
    evidence = Evidence(options.bootstrap, options.calibration_bins)
    # The statistics are CPU work (bootstrap draws): off the event loop, so the
    # service keeps answering while a large report is computed.
    report = await asyncio.to_thread(assemble, counted, names, evidence, scope)
    return {**report, "review_agreement": reviewed}


PairCounts = tuple[
    list[tuple[str, str, int]],
    list[tuple[str, str, str, str, int]],
    dict[tuple[str, uuid.UUID | None], CostFacts],
]
"""The gold summary's, the judges' agreement's and the costs' counts (see :class:`Counted`)."""


async def _pair_counts(session: AsyncSession, scope: Scope) -> PairCounts:
    judges = await reports.judges(session, scope)
    per_pair = await reports.pair_counts(session, scope, judges)
    return per_pair.gold, per_pair.judge_pairs, await reports.call_costs(session, scope)


async def _pair_counts_apart(database: Database, scope: Scope) -> PairCounts:
    """:func:`_pair_counts` in a transaction of its own (a second connection)."""
    async with database.transaction() as session:
        await reports.settle_for_counting(session)
        return await _pair_counts(session, scope)


@dataclass(frozen=True, slots=True)
class Counted:
    """What the database counted for a report (app.store.reports)."""

    cells: list[Cell]
    gold: list[tuple[str, str, int]]
    """(gold winner, source, pairs) over the pairs in scope."""
    judge_pairs: list[tuple[str, str, str, str, int]]
    """(judge, judge, winner, winner, pairs) over the pairs two judges both decided."""
    costs: dict[tuple[str, uuid.UUID | None], CostFacts]


def assemble(
    counted: Counted, names: dict[uuid.UUID, str], evidence: Evidence, scope: Scope
) -> dict[str, Any]:
    """The report from what the database counted in a scope."""
    boot = evidence.boot
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": utcnow().isoformat(),
        "scope": {
            "judge": scope.judge,
            "batch": _batch_ref(scope.batch_id, names),
        },
        "settings": {
            "resamples": boot.resamples,
            "confidence_level": boot.confidence,
            "seed": boot.seed,
            "calibration_bins": evidence.bins,
        },
        "gold": gold_summary(counted.gold),
        "judges": judge_blocks(counted.cells, counted.costs, evidence),
        "batches": batch_blocks(counted.cells, counted.costs, names, evidence),
        "templates": template_blocks(counted.cells, evidence),
        "judge_agreement": judge_agreement(counted.judge_pairs, boot),
    }


def _batch_ref(batch_id: uuid.UUID | None, names: dict[uuid.UUID, str]) -> dict[str, str] | None:
    if batch_id is None:
        return None
    return {"id": str(batch_id), "name": names.get(batch_id, "")}


def gold_summary(gold: Sequence[tuple[str, str, int]]) -> dict[str, Any]:
    """The gold labels that meet the comparisons in scope, one per pair."""
    winners: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for winner, source, pairs in gold:
        winners[winner] += pairs
        sources[source] += pairs
    return {
        "pairs": sum(winners.values()),
        "winners": {label: winners[label] for label in LABELS},
        "sources": {source: sources[source] for source in ("import", "review")},
    }


def _sum_costs(items: list[CostFacts]) -> CostFacts:
    return CostFacts(
        sum(c.calls for c in items),
        sum((c.usd for c in items), Decimal(0)),
        sum(c.unpriced for c in items),
    )


def judge_blocks(
    cells: Sequence[Cell],
    costs: dict[tuple[str, uuid.UUID | None], CostFacts],
    evidence: Evidence,
) -> list[dict[str, Any]]:
    return [
        block(
            judge,
            None,
            rows,
            _sum_costs([c for (j, _), c in costs.items() if j == judge]),
            evidence,
        )
        for judge, rows in sorted(grouped(cells, lambda c: c.judge).items())
    ]


def batch_blocks(
    cells: Sequence[Cell],
    costs: dict[tuple[str, uuid.UUID | None], CostFacts],
    names: dict[uuid.UUID, str],
    evidence: Evidence,
) -> list[dict[str, Any]]:
    groups = grouped(cells, lambda c: None if c.batch_id is None else (c.batch_id, c.judge))
    ordered = sorted(groups.items(), key=lambda item: (names.get(item[0][0], ""), item[0][1]))
    return [
        block(
            judge,
            _batch_ref(batch_id, names),
            rows,
            costs.get((judge, batch_id), NO_COST),
            evidence,
        )
        for (batch_id, judge), rows in ordered
    ]


def template_blocks(cells: Sequence[Cell], evidence: Evidence) -> list[dict[str, Any]]:
    """The metrics per (judge, template ref): two templates on one gold set are two rows.

    Calls are costed per judge and batch, not per template, so these rows
    carry no cost (``None``); label each template in its own batch to see it.
    """
    groups = grouped(cells, lambda c: (c.judge, c.template or ""))
    return [
        {**block(judge, None, rows, NO_COST, evidence), "template": template, "cost": None}
        for (judge, template), rows in sorted(groups.items())
    ]


def judge_agreement(
    pairs: Sequence[tuple[str, str, str, str, int]], boot: Bootstrap
) -> list[dict[str, Any]]:
    """Agreement and κ between every two judges, over the pairs both judged."""
    matrices: dict[tuple[str, str], npt.NDArray[np.int64]] = {}
    for first, second, first_winner, second_winner, n in pairs:
        # The database orders judges by its collation; the report by Python's.
        if second < first:
            first, second, first_winner, second_winner = second, first, second_winner, first_winner
        matrix = matrices.setdefault((first, second), np.zeros((3, 3), dtype=np.int64))
        matrix[INDEX[first_winner], INDEX[second_winner]] += n
    result = []
    for (first, second), matrix in sorted(matrices.items()):
        common = int(matrix.sum())
        result.append(
            {
                "judge_a": first,
                "judge_b": second,
                "pairs": common,
                "agreement": proportion(int(matrix.trace()), common, boot).as_dict(),
                "kappa": kappa(matrix, boot).as_dict(),
            }
        )
    return result
