"""Build the judge-quality report: per judge, per batch, and between judges.

Reads everything it needs in one short transaction, then computes in
memory; the result is plain JSON (see the README's "Measuring judges").
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import combinations
from typing import Any

from app.errors import NotFoundError
from app.reports.blocks import NO_COST, Evidence, block
from app.reports.metrics import LABELS, Bootstrap, confusion, kappa, proportion
from app.reports.review_agreement import review_agreement
from app.store import reports
from app.store.db import Database
from app.store.models import utcnow
from app.store.reports import ComparisonFacts, CostFacts, Scope

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
        facts = await reports.comparison_facts(session, scope)
        gold = await reports.gold_winners(session, scope)
        costs = await reports.call_costs(session, scope)
        positions = await reports.inconsistent_positions(session, scope)
        batch_ids = {f.batch_id for f in facts if f.batch_id is not None}
        names = await reports.batch_names(session, batch_ids | ({batch_id} if batch_id else set()))
        reviewed = await review_agreement(session, options.bootstrap, scope)
    evidence = Evidence(gold, positions, options.bootstrap, options.calibration_bins)
    # The statistics are CPU work (bootstrap draws): off the event loop, so the
    # service keeps answering while a large report is computed.
    report = await asyncio.to_thread(assemble, facts, costs, names, evidence, scope)
    return {**report, "review_agreement": reviewed}


def assemble(
    facts: Sequence[ComparisonFacts],
    costs: dict[tuple[str, uuid.UUID | None], CostFacts],
    names: dict[uuid.UUID, str],
    evidence: Evidence,
    scope: Scope,
) -> dict[str, Any]:
    """The report from the rows a scope selected."""
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
        "gold": gold_summary(facts, evidence.gold),
        "judges": judge_blocks(facts, costs, evidence),
        "batches": batch_blocks(facts, costs, names, evidence),
        "templates": template_blocks(facts, evidence),
        "judge_agreement": judge_agreement(facts, boot),
    }


def _batch_ref(batch_id: uuid.UUID | None, names: dict[uuid.UUID, str]) -> dict[str, str] | None:
    if batch_id is None:
        return None
    return {"id": str(batch_id), "name": names.get(batch_id, "")}


def gold_summary(
    facts: Sequence[ComparisonFacts], gold: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """The gold labels that meet the comparisons in scope, one per pair."""
    keys = {f.pair_key for f in facts if f.pair_key is not None and f.pair_key in gold}
    winners = Counter(gold[key][0] for key in keys)
    sources = Counter(gold[key][1] for key in keys)
    return {
        "pairs": len(keys),
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
    facts: Sequence[ComparisonFacts],
    costs: dict[tuple[str, uuid.UUID | None], CostFacts],
    evidence: Evidence,
) -> list[dict[str, Any]]:
    by_judge: dict[str, list[ComparisonFacts]] = defaultdict(list)
    for fact in facts:
        by_judge[fact.judge].append(fact)
    return [
        block(
            judge,
            None,
            rows,
            _sum_costs([c for (j, _), c in costs.items() if j == judge]),
            evidence,
        )
        for judge, rows in sorted(by_judge.items())
    ]


def batch_blocks(
    facts: Sequence[ComparisonFacts],
    costs: dict[tuple[str, uuid.UUID | None], CostFacts],
    names: dict[uuid.UUID, str],
    evidence: Evidence,
) -> list[dict[str, Any]]:
    groups: dict[tuple[uuid.UUID, str], list[ComparisonFacts]] = defaultdict(list)
    for fact in facts:
        if fact.batch_id is not None:
            groups[(fact.batch_id, fact.judge)].append(fact)
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


def template_blocks(facts: Sequence[ComparisonFacts], evidence: Evidence) -> list[dict[str, Any]]:
    """The metrics per (judge, template ref): two templates on one gold set are two rows.

    Calls are costed per judge and batch, not per template, so these rows
    carry no cost (``None``); label each template in its own batch to see it.
    """
    groups: dict[tuple[str, str], list[ComparisonFacts]] = defaultdict(list)
    for fact in facts:
        groups[(fact.judge, fact.template or "")].append(fact)
    return [
        {**block(judge, None, rows, NO_COST, evidence), "template": template, "cost": None}
        for (judge, template), rows in sorted(groups.items())
    ]


def judge_agreement(facts: Sequence[ComparisonFacts], boot: Bootstrap) -> list[dict[str, Any]]:
    """Agreement and κ between every two judges, over the pairs both judged."""
    verdicts: dict[str, dict[str, str]] = defaultdict(dict)
    for fact in facts:
        if fact.winner is not None and fact.pair_key is not None:
            verdicts[fact.judge][fact.pair_key] = fact.winner
    result = []
    for first, second in combinations(sorted(verdicts), 2):
        common = sorted(verdicts[first].keys() & verdicts[second].keys())
        if not common:
            continue
        matrix = confusion(
            [verdicts[first][k] for k in common], [verdicts[second][k] for k in common]
        )
        result.append(
            {
                "judge_a": first,
                "judge_b": second,
                "pairs": len(common),
                "agreement": proportion(int(matrix.trace()), len(common), boot).as_dict(),
                "kappa": kappa(matrix, boot).as_dict(),
            }
        )
    return result
