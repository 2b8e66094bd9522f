"""An online training run's rewards (issue 17): ``referee report --run RUN``.

Every item a trainer sent to ``POST /v1/rewards`` (or ``/get_reward``) is
stored with the run and step from its metadata. This report reads a run's
items back: how many were scored and why the others were not (failed with
the judge's error class, deadline, invalid input), the scores' mean, min,
max, quantiles and histogram over the whole run and per step, the trend of
the per-step mean, the judges and scorers used, and the cost of the calls
behind the scores.

The database counts (GROUP BY step, status, reason; histogram bins) and
streams the scores in order once for the quantiles, which are picked at
their ranks on the way: memory holds a few numbers per step, not the scores.
Quantiles are linear interpolation between order statistics (numpy's
default, type 7). Histogram bins are ten equal-width bins over [0, 1], the
scale every scorer maps to (a reward model's raw score goes through its
sigmoid); a bin holds its lower edge, the last one holds 1.0 too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.errors import NotFoundError
from app.store import reports
from app.store.db import Database
from app.store.models import utcnow
from app.store.reports import CostFacts, RewardCell

SCHEMA_VERSION = 1
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
BINS = 10
UNSCORED = ("failed", "deadline", "invalid")


@dataclass(slots=True)
class _Group:
    """Counts of a step (or the whole run) summed from its cells."""

    items: int = 0
    scored: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    unscored: dict[tuple[str, str | None], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, cell: RewardCell) -> None:
        self.items += cell.items
        self.scored += cell.scored
        self.total += cell.score_sum
        if cell.score_min is not None:
            self.low = cell.score_min if self.low is None else min(self.low, cell.score_min)
        if cell.score_max is not None:
            self.high = cell.score_max if self.high is None else max(self.high, cell.score_max)
        if cell.status != "scored" or cell.scored < cell.items:
            self.unscored[(cell.status, cell.reason)] += cell.items - cell.scored


def quantile_ranks(n: int) -> set[int]:
    """The 0-based order statistics the quantiles of n sorted values interpolate between."""
    ranks: set[int] = set()
    for q in QUANTILES:
        position = (n - 1) * q
        ranks |= {math.floor(position), math.ceil(position)}
    return ranks


def quantiles_of(values: dict[int, float], n: int) -> dict[str, float] | None:
    """Linear-interpolation quantiles from the order statistics at :func:`quantile_ranks`."""
    if n == 0:
        return None
    found = {}
    for q in QUANTILES:
        position = (n - 1) * q
        low, high = math.floor(position), math.ceil(position)
        fraction = position - low
        found[f"p{round(q * 100)}"] = values[low] + (values[high] - values[low]) * fraction
    return found


async def _order_statistics(
    scores: AsyncIterator[tuple[int | None, float]], wanted: dict[Any, set[int]], by_step: bool
) -> dict[Any, dict[int, float]]:
    """The values at the wanted ranks of each group, from scores sorted within each group."""
    picked: dict[Any, dict[int, float]] = defaultdict(dict)
    group: Any = object()
    rank = 0
    async for step, score in scores:
        key = step if by_step else None
        if key != group:
            group, rank = key, 0
        if rank in wanted.get(key, ()):
            picked[key][rank] = score
        rank += 1
    return picked


def _histogram(counts: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {"lower": index / BINS, "upper": (index + 1) / BINS, "count": counts.get(index, 0)}
        for index in range(BINS)
    ]


def _summary(group: _Group, picked: dict[int, float], histogram: dict[int, int]) -> dict[str, Any]:
    return {
        "items": group.items,
        "scored": group.scored,
        "unscored": [
            {"status": status, "reason": reason, "items": n}
            for (status, reason), n in sorted(
                group.unscored.items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ],
        "mean": group.total / group.scored if group.scored else None,
        "min": group.low,
        "max": group.high,
        "quantiles": quantiles_of(picked, group.scored),
        "histogram": _histogram(histogram),
    }


def trend(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The per-step mean from the first step to the last, and its least-squares slope."""
    points = [
        (s["step"], s["mean"]) for s in steps if s["step"] is not None and s["mean"] is not None
    ]
    if not points:
        return {"steps": 0, "first": None, "last": None, "change": None, "slope_per_step": None}
    slope = None
    if len(points) >= 2:
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        if spread:
            slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    (first_step, first), (last_step, last) = points[0], points[-1]
    return {
        "steps": len(points),
        "first": {"step": first_step, "mean": first},
        "last": {"step": last_step, "mean": last},
        "change": last - first,
        "slope_per_step": slope,
    }


def _cost(cost: CostFacts, labels: int, scored: int) -> dict[str, Any]:
    per_1000 = cost.usd / scored * 1000 if scored else None
    return {
        "usd": float(cost.usd),
        "calls": cost.calls,
        "unpriced_calls": cost.unpriced,
        "labels": labels,
        "per_1000_scores_usd": float(per_1000) if per_1000 is not None else None,
    }


def _step_order(step: int | None) -> tuple[bool, int]:
    return (step is None, step or 0)


async def run_report(database: Database, run: str) -> dict[str, Any]:
    """The report of one run's rewards; 404 when no item names this run."""
    async with database.transaction() as session:
        cells = await reports.reward_cells(session, run)
        if not cells:
            raise NotFoundError(
                f"no reward items for run {run!r} (the run is metadata.run of POST /v1/rewards "
                "items, or run= on /get_reward)"
            )
        whole = _Group()
        steps: dict[int | None, _Group] = defaultdict(_Group)
        judges: dict[tuple[str, str], _Group] = defaultdict(_Group)
        for cell in cells:
            whole.add(cell)
            steps[cell.step].add(cell)
            judges[(cell.scorer, cell.judge)].add(cell)
        bins: dict[Any, dict[int, int]] = defaultdict(dict)
        overall: dict[int, int] = defaultdict(int)
        for step, index, n in await reports.reward_histogram(session, run, BINS):
            bins[step][index] = n
            overall[index] += n
        per_step = await _order_statistics(
            reports.reward_scores(session, run, by_step=True),
            {step: quantile_ranks(group.scored) for step, group in steps.items()},
            by_step=True,
        )
        across = await _order_statistics(
            reports.reward_scores(session, run, by_step=False),
            {None: quantile_ranks(whole.scored)},
            by_step=False,
        )
        cost, labels = await reports.reward_costs(session, run)
    step_blocks = [
        {"step": step, **_summary(steps[step], per_step.get(step, {}), bins.get(step, {}))}
        for step in sorted(steps, key=_step_order)
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": utcnow().isoformat(),
        "run": run,
        "settings": {"quantiles": list(QUANTILES), "histogram_bins": BINS},
        "judges": [
            {"scorer": scorer, "judge": judge, "items": group.items, "scored": group.scored}
            for (scorer, judge), group in sorted(judges.items())
        ],
        "overall": _summary(whole, across.get(None, {}), overall),
        "steps": step_blocks,
        "trend": trend(step_blocks),
        "cost": _cost(cost, labels, whole.scored),
    }


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _usd(value: float | Decimal) -> str:
    return f"${float(value):.4f}"


def render_text(report: dict[str, Any]) -> str:
    """The run report as plain lines."""
    whole, cost, moving = report["overall"], report["cost"], report["trend"]
    lines = [
        f"run {report['run']}: {whole['items']} items, {whole['scored']} scored, "
        f"{whole['items'] - whole['scored']} without a score",
    ]
    for entry in whole["unscored"]:
        reason = f" ({entry['reason']})" if entry["reason"] else ""
        lines.append(f"  {entry['status']}{reason}: {entry['items']}")
    lines.append(
        "judges: "
        + ", ".join(
            f"{j['judge']} ({j['scorer']}, {j['scored']}/{j['items']} scored)"
            for j in report["judges"]
        )
    )
    lines.append(f"scores: {_distribution(whole)}")
    lines.append(
        f"cost: {_usd(cost['usd'])} over {cost['calls']} calls ({cost['unpriced_calls']} "
        f"unpriced) for {cost['labels']} labels; per 1,000 scores "
        + ("—" if cost["per_1000_scores_usd"] is None else _usd(cost["per_1000_scores_usd"]))
    )
    if moving["steps"]:
        lines.append(
            f"trend: mean {_number(moving['first']['mean'])} at step {moving['first']['step']} "
            f"→ {_number(moving['last']['mean'])} at step {moving['last']['step']} "
            f"(change {_number(moving['change'])}, slope {_number(moving['slope_per_step'], 5)}"
            " per step)"
        )
    lines += ["", "step    items  scored  unscored  mean    p10     p50     p90"]
    for step in report["steps"]:
        q = step["quantiles"] or {}
        name = "—" if step["step"] is None else str(step["step"])
        lines.append(
            f"{name:<7} {step['items']:>5}  {step['scored']:>6}  "
            f"{step['items'] - step['scored']:>8}  {_number(step['mean']):<6}  "
            f"{_number(q.get('p10')):<6}  {_number(q.get('p50')):<6}  {_number(q.get('p90'))}"
        )
    lines += ["", "histogram of scores (whole run)"]
    peak = max((b["count"] for b in whole["histogram"]), default=0) or 1
    for b in whole["histogram"]:
        bar = "#" * round(30 * b["count"] / peak)
        lines.append(f"  [{b['lower']:.1f}, {b['upper']:.1f})  {b['count']:>7}  {bar}")
    return "\n".join(lines) + "\n"


def _distribution(summary: dict[str, Any]) -> str:
    q = summary["quantiles"]
    if q is None:
        return "none scored"
    return (
        f"mean {_number(summary['mean'])}, min {_number(summary['min'])}, "
        f"p10 {_number(q['p10'])}, p25 {_number(q['p25'])}, median {_number(q['p50'])}, "
        f"p75 {_number(q['p75'])}, p90 {_number(q['p90'])}, max {_number(summary['max'])}"
    )
