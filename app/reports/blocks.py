"""The metrics of one group of comparisons (a judge, or a batch and its judge), as JSON.

The shape is documented in the README ("Measuring judges") and pinned by
the report tests; every share carries its bootstrap interval and its n.
A group's metrics are computed from its :class:`Tally`: the sums of the
database's GROUP BY cells (app.store.reports.Cell) that fall in the group,
so nothing here holds a row per comparison.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from app.reports.metrics import (
    LABELS,
    BinTotals,
    Bootstrap,
    agreement,
    calibration_of_bins,
    proportion,
)
from app.store.reports import Cell, CostFacts

INDEX = {label: i for i, label in enumerate(LABELS)}


def _matrix() -> npt.NDArray[np.int64]:
    return np.zeros((3, 3), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Evidence:
    """How the metrics of a group are computed, beside its counts."""

    boot: Bootstrap
    bins: int


@dataclass(slots=True)
class Tally:
    """Everything a group's metrics are computed from, summed over its cells."""

    bins: int
    statuses: Counter[str] = field(default_factory=Counter)
    winners: Counter[str] = field(default_factory=Counter)
    with_gold: npt.NDArray[np.int64] = field(default_factory=_matrix)
    """Judge winner (rows) against gold winner (columns), over judged pairs with gold."""
    both_orders: int = 0
    inconsistent: int = 0
    leaning: int = 0
    """Inconsistent verdicts whose calls named positions."""
    leaning_first: int = 0
    judge_uneven: int = 0
    judge_longer: int = 0
    gold_uneven: int = 0
    gold_longer: int = 0
    calibration: list[BinTotals] = field(default_factory=list)
    by_category: dict[str | None, npt.NDArray[np.int64]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.calibration = [BinTotals() for _ in range(self.bins)]

    def add(self, cell: Cell) -> None:
        n = cell.count
        self.statuses[cell.status] += n
        if cell.winner is None:
            return
        self.winners[cell.winner] += n
        if cell.consistent is not None:
            self.both_orders += n
            if cell.consistent is False:
                self.inconsistent += n
                if cell.lean is not None:
                    self.leaning += n
                    self.leaning_first += n if cell.lean == "first" else 0
        uneven = cell.longer in ("a", "b")
        if uneven and cell.winner != "tie":
            self.judge_uneven += n
            self.judge_longer += n if cell.winner == cell.longer else 0
        if cell.gold is None:
            return
        self.with_gold[INDEX[cell.winner], INDEX[cell.gold]] += n
        matrix = self.by_category.setdefault(cell.category, _matrix())
        matrix[INDEX[cell.winner], INDEX[cell.gold]] += n
        if uneven and cell.gold != "tie":
            self.gold_uneven += n
            self.gold_longer += n if cell.gold == cell.longer else 0
        if cell.bin is not None:
            totals = self.calibration[cell.bin]
            totals.count += n
            totals.confidence += cell.confidence_sum
            totals.correct += n if cell.winner == cell.gold else 0

    @classmethod
    def of(cls, cells: Iterable[Cell], bins: int) -> Tally:
        tally = cls(bins)
        for cell in cells:
            tally.add(cell)
        return tally


def counts_of(tally: Tally) -> dict[str, int]:
    return {
        "comparisons": sum(tally.statuses.values()),
        "labeled": tally.statuses["labeled"],
        "failed": tally.statuses["failed"],
        "pending": tally.statuses["pending"],
    }


def position_metrics(tally: Tally, boot: Bootstrap) -> dict[str, Any]:
    """Consistency across orders, and which position the inconsistent verdicts leaned to.

    An inconsistent verdict leans first when its calls picked the first-shown
    position more often than the second.
    """
    return {
        "consistency": proportion(
            tally.both_orders - tally.inconsistent, tally.both_orders, boot
        ).as_dict(),
        "inconsistent": tally.inconsistent,
        "favoured_first": proportion(tally.leaning_first, tally.leaning, boot).as_dict(),
    }


def length_metrics(tally: Tally, boot: Bootstrap) -> dict[str, Any]:
    """How often the longer response wins with the judge, and with the humans."""
    return {
        "judge_prefers_longer": proportion(tally.judge_longer, tally.judge_uneven, boot).as_dict(),
        "gold_prefers_longer": proportion(tally.gold_longer, tally.gold_uneven, boot).as_dict(),
    }


def calibration_metrics(tally: Tally) -> dict[str, Any]:
    """Verdict confidence against agreement with gold: reliability bins and ECE."""
    ece, bins = calibration_of_bins(tally.calibration)
    return {
        "ece": ece,
        "n": sum(b.count for b in tally.calibration),
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


def agreement_of(matrix: npt.NDArray[np.int64], boot: Bootstrap) -> dict[str, Any]:
    """Agreement with gold (both conventions) and κ of a judge-by-gold confusion matrix."""
    return {name: e.as_dict() for name, e in agreement(matrix, boot).items()}


def category_metrics(tally: Tally, boot: Bootstrap) -> list[dict[str, Any]]:
    """Agreement with gold per ``metadata.category``, over the gold pairs of a group.

    Empty when no gold pair has a category. Otherwise the gold pairs without
    one form a last row with category None, so the rows' gold_pairs add up
    to the group's with_gold.
    """
    groups = tally.by_category
    if set(groups) <= {None}:
        return []
    # Named categories sorted, the uncategorised ones last.
    order = sorted(groups, key=lambda name: (name is None, name or ""))
    return [
        {
            "category": name,
            "gold_pairs": int(groups[name].sum()),
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
    cells: Iterable[Cell],
    cost: CostFacts,
    evidence: Evidence,
) -> dict[str, Any]:
    """Every metric of one group of comparisons."""
    tally = Tally.of(cells, evidence.bins)
    counts = counts_of(tally)
    counts["with_gold"] = int(tally.with_gold.sum())
    judged = sum(tally.winners.values())
    boot = evidence.boot
    return {
        "judge": judge,
        "batch": batch,
        "counts": counts,
        "winners": {label: tally.winners[label] for label in LABELS},
        "tie_rate": proportion(tally.winners["tie"], judged, boot).as_dict(),
        "failure_rate": proportion(
            counts["failed"], counts["labeled"] + counts["failed"], boot
        ).as_dict(),
        "agreement": agreement_of(tally.with_gold, boot),
        "position": position_metrics(tally, boot),
        "length": length_metrics(tally, boot),
        "calibration": calibration_metrics(tally),
        "cost": cost_metrics(cost, counts["labeled"]),
        "by_category": category_metrics(tally, boot),
    }


def grouped(cells: Iterable[Cell], key: Any) -> dict[Any, list[Cell]]:
    """Cells by a key of theirs (None keys left out)."""
    groups: dict[Any, list[Cell]] = defaultdict(list)
    for cell in cells:
        found = key(cell)
        if found is not None:
            groups[found].append(cell)
    return groups


NO_COST = CostFacts(0, Decimal(0), 0)
