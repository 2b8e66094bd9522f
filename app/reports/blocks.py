"""The metrics of one group of comparisons (a judge, or a batch and its judge), as JSON.

The shape is documented in the README ("Measuring judges") and pinned by
the report tests; every share carries its bootstrap interval and its n.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.reports.metrics import LABELS, Bootstrap, agreement, calibration, confusion, proportion
from app.store.reports import ComparisonFacts, CostFacts


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the metrics of a group are computed from, beside its comparisons."""

    gold: dict[str, tuple[str, str]]
    """pair_key → (gold winner, source)."""
    positions: dict[int, list[str]]
    """verdict id → positions chosen in shown order, for verdicts whose orders disagreed."""
    boot: Bootstrap
    bins: int


def _longer_won(winner: str, length_a: int, length_b: int) -> bool:
    return (winner == "a") == (length_a > length_b)


def counts_of(facts: Sequence[ComparisonFacts]) -> dict[str, int]:
    statuses = Counter(f.status for f in facts)
    return {
        "comparisons": len(facts),
        "labeled": statuses["labeled"],
        "failed": statuses["failed"],
        "pending": statuses["pending"],
    }


def _judged(facts: Sequence[ComparisonFacts]) -> list[ComparisonFacts]:
    return [f for f in facts if f.winner is not None]


def _with_gold(
    facts: Sequence[ComparisonFacts], gold: dict[str, tuple[str, str]]
) -> list[tuple[ComparisonFacts, str]]:
    return [
        (f, gold[f.pair_key][0])
        for f in _judged(facts)
        if f.pair_key is not None and f.pair_key in gold
    ]


def position_metrics(facts: Sequence[ComparisonFacts], evidence: Evidence) -> dict[str, Any]:
    """Consistency across orders, and which position the inconsistent verdicts leaned to."""
    both_orders = [f for f in _judged(facts) if f.position_consistent is not None]
    inconsistent = [f for f in both_orders if f.position_consistent is False]
    # Score each inconsistent verdict by its calls: first-position picks minus second-position.
    leanings = [
        picks.count("1") - picks.count("2")
        for f in inconsistent
        if f.verdict_id is not None and (picks := evidence.positions.get(f.verdict_id))
    ]
    return {
        "consistency": proportion(
            len(both_orders) - len(inconsistent), len(both_orders), evidence.boot
        ).as_dict(),
        "inconsistent": len(inconsistent),
        "favoured_first": proportion(
            sum(s > 0 for s in leanings), len(leanings), evidence.boot
        ).as_dict(),
    }


def length_metrics(facts: Sequence[ComparisonFacts], evidence: Evidence) -> dict[str, Any]:
    """How often the longer response wins with the judge, and with the humans."""
    judged = [
        f
        for f in _judged(facts)
        if f.winner != "tie"
        and f.length_a is not None
        and f.length_b is not None
        and f.length_a != f.length_b
    ]
    judge_longer = sum(
        _longer_won(str(f.winner), int(f.length_a or 0), int(f.length_b or 0)) for f in judged
    )
    humans = [
        (f, winner)
        for f, winner in _with_gold(facts, evidence.gold)
        if winner != "tie"
        and f.length_a is not None
        and f.length_b is not None
        and f.length_a != f.length_b
    ]
    gold_longer = sum(_longer_won(w, int(f.length_a or 0), int(f.length_b or 0)) for f, w in humans)
    return {
        "judge_prefers_longer": proportion(judge_longer, len(judged), evidence.boot).as_dict(),
        "gold_prefers_longer": proportion(gold_longer, len(humans), evidence.boot).as_dict(),
    }


def calibration_metrics(facts: Sequence[ComparisonFacts], evidence: Evidence) -> dict[str, Any]:
    """Verdict confidence against agreement with gold: reliability bins and ECE."""
    rated = [(f, w) for f, w in _with_gold(facts, evidence.gold) if f.confidence is not None]
    ece, bins = calibration(
        [float(f.confidence or 0.0) for f, _ in rated],
        [f.winner == w for f, w in rated],
        evidence.bins,
    )
    return {
        "ece": ece,
        "n": len(rated),
        "bins": [
            {
                "lower": b.lower,
                "upper": b.upper,
                "count": b.count,
                "mean_confidence": b.mean_confidence,
                "accuracy": b.accuracy,
            }
            for b in bins
        ],
    }


def agreement_of(paired: Sequence[tuple[ComparisonFacts, str]], boot: Bootstrap) -> dict[str, Any]:
    """Agreement with gold (both conventions) and κ over (comparison, gold winner) pairs."""
    matrix = confusion([str(f.winner) for f, _ in paired], [w for _, w in paired])
    return {name: e.as_dict() for name, e in agreement(matrix, boot).items()}


def category_metrics(
    paired: Sequence[tuple[ComparisonFacts, str]], boot: Bootstrap
) -> list[dict[str, Any]]:
    """Agreement with gold per ``metadata.category``, over the gold pairs of a group.

    Empty when no gold pair has a category. Otherwise the gold pairs without
    one form a last row with category None, so the rows' gold_pairs add up
    to the group's with_gold.
    """
    groups: dict[str | None, list[tuple[ComparisonFacts, str]]] = defaultdict(list)
    for fact, winner in paired:
        groups[fact.category].append((fact, winner))
    if set(groups) <= {None}:
        return []
    # Named categories sorted, the uncategorised ones last.
    order = sorted(groups, key=lambda name: (name is None, name or ""))
    return [
        {
            "category": name,
            "gold_pairs": len(groups[name]),
            "agreement": agreement_of(groups[name], boot),
        }
        for name in order
    ]


def cost_metrics(cost: CostFacts, labeled: int) -> dict[str, Any]:
    per_1000 = cost.usd / labeled * 1000 if labeled else None
    return {
        "usd": float(cost.usd),
        "calls": cost.calls,
        "unpriced_calls": cost.unpriced,
        "labels": labeled,
        "per_1000_labels_usd": float(per_1000) if per_1000 is not None else None,
    }


def block(
    judge: str,
    batch: dict[str, str] | None,
    facts: Sequence[ComparisonFacts],
    cost: CostFacts,
    evidence: Evidence,
) -> dict[str, Any]:
    """Every metric of one group of comparisons."""
    counts = counts_of(facts)
    judged = _judged(facts)
    paired = _with_gold(facts, evidence.gold)
    counts["with_gold"] = len(paired)
    winners = Counter(str(f.winner) for f in judged)
    boot = evidence.boot
    return {
        "judge": judge,
        "batch": batch,
        "counts": counts,
        "winners": {label: winners[label] for label in LABELS},
        "tie_rate": proportion(winners["tie"], len(judged), boot).as_dict(),
        "failure_rate": proportion(
            counts["failed"], counts["labeled"] + counts["failed"], boot
        ).as_dict(),
        "agreement": agreement_of(paired, boot),
        "position": position_metrics(facts, evidence),
        "length": length_metrics(facts, evidence),
        "calibration": calibration_metrics(facts, evidence),
        "cost": cost_metrics(cost, counts["labeled"]),
        "by_category": category_metrics(paired, boot),
    }


NO_COST = CostFacts(0, Decimal(0), 0)
