"""The selection strategies' decisions, as pure functions of what the judges said.

A prompt's distinct candidates are numbered ``0 … n-1`` in the order the
generation lists them (first sample index first); a pair ``(i, j)`` always
has ``i < j`` and is judged with candidate ``i`` as ``response_a``, so the
same pair gets the same label key, and a re-run reuses its verdict.

- ``all-pairs``: every pair, judged in both orders. A candidate's score is
  its wins: 1 per pair whose verdict it won, ½ per tie. In a complete round
  robin the win counts rank the candidates exactly as a Bradley-Terry
  maximum-likelihood fit does, so no fit is needed.
- ``best-vs-worst``: each candidate rated once; its score is the rating.
- ``tournament``: a budget of pairs, sampled as :class:`Tournament` says,
  and a Bradley-Terry posterior (:mod:`.bradley_terry`) over their verdicts.

Chosen is the top score and rejected the bottom. In ``all-pairs`` and
``best-vs-worst``, equal scores at the top go to the shortest text (then
the first candidate), equal scores at the bottom to the longest (then the
first): when the judge cannot tell them apart, the pair leans against the
length bias judges are known for. A tournament's strengths are continuous;
equal ones rank in its seeded order.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.labeling.rounds.bradley_terry import Fit, fit, votes

StrategyName = Literal["all-pairs", "best-vs-worst", "tournament"]
STRATEGIES: tuple[StrategyName, ...] = ("all-pairs", "best-vs-worst", "tournament")

Pair = tuple[int, int]
PairVerdict = tuple[int, int, str]
"""``(i, j, winner)``: the verdict on candidates i (as a) and j (as b): a, b or tie."""

# Why a prompt has no preference. Stored as the selection's skip_reason.
TOO_FEW = "too_few_candidates"
BELOW_MARGIN = "below_margin"
INSEPARABLE = "inseparable"
BUDGET_TOO_SMALL = "budget_too_small"
JUDGE_FAILED = "judge_failed"
REJECTED_INPUT = "rejected_input"
SKIP_REASONS = (TOO_FEW, BELOW_MARGIN, INSEPARABLE, BUDGET_TOO_SMALL, JUDGE_FAILED, REJECTED_INPUT)


@dataclass(frozen=True, slots=True)
class Decision:
    """A prompt's outcome: chosen and rejected candidate indices, or why there are none."""

    chosen: int | None
    rejected: int | None
    chosen_score: float | None
    rejected_score: float | None
    margin: float | None
    """Chosen's score minus rejected's in the strategy's unit: wins, points, log-strength."""
    reason: str
    """One sentence a person can check against ``details``."""
    skip_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def selected(self) -> bool:
        return self.skip_reason is None


def skip(code: str, reason: str, **details: Any) -> Decision:
    return Decision(None, None, None, None, None, reason, code, details)


def extremes(scores: Sequence[float], lengths: Sequence[int]) -> tuple[int, int]:
    """(chosen, rejected): the top and bottom scores, equal scores broken by length."""
    top, bottom = max(scores), min(scores)
    chosen = min((i for i, s in enumerate(scores) if s == top), key=lambda i: (lengths[i], i))
    rejected = min((i for i, s in enumerate(scores) if s == bottom), key=lambda i: (-lengths[i], i))
    return chosen, rejected


def decide_by_scores(
    scores: Sequence[float], lengths: Sequence[int], margin: float, unit: str
) -> Decision:
    """Top versus bottom score, skipped when the gap is below ``margin`` (> 0)."""
    details = {"scores": list(scores)}
    if len(scores) < 2:
        return skip(TOO_FEW, f"{len(scores)} distinct candidate(s): nothing to compare", **details)
    chosen, rejected = extremes(scores, lengths)
    gap = scores[chosen] - scores[rejected]
    top, bottom = _number(scores[chosen]), _number(scores[rejected])
    if gap < margin:
        return Decision(
            None,
            None,
            scores[chosen],
            scores[rejected],
            gap,
            f"top {unit} {top} minus bottom {unit} {bottom} is {_number(gap)}, "
            f"below the margin {_number(margin)}",
            BELOW_MARGIN,
            details,
        )
    return Decision(
        chosen,
        rejected,
        scores[chosen],
        scores[rejected],
        gap,
        f"chosen has the top {unit} ({top}), rejected the bottom ({bottom}); "
        f"the gap {_number(gap)} is at least the margin {_number(margin)}",
        details=details,
    )


def _number(value: float) -> str:
    return f"{value:g}"


def all_pair_indices(n: int) -> list[Pair]:
    return list(itertools.combinations(range(n), 2))


def win_counts(n: int, verdicts: Sequence[PairVerdict]) -> list[float]:
    """Each candidate's wins: 1 for a verdict it won, ½ for a tie."""
    wins = [0.0] * n
    for i, j, winner in verdicts:
        if winner == "tie":
            wins[i] += 0.5
            wins[j] += 0.5
        else:
            wins[i if winner == "a" else j] += 1.0
    return wins


def all_pairs(verdicts: Sequence[PairVerdict], lengths: Sequence[int], margin: float) -> Decision:
    """``all-pairs``: most wins against fewest, skipped when they differ by less than ``margin``."""
    decision = decide_by_scores(win_counts(len(lengths), verdicts), lengths, margin, "wins")
    decision.details["verdicts"] = [list(v) for v in verdicts]
    return decision


def best_vs_worst(scores: Sequence[float], lengths: Sequence[int], margin: float) -> Decision:
    """``best-vs-worst``: top rating against bottom, skipped below ``margin`` points."""
    return decide_by_scores(scores, lengths, margin, "score")


def default_budget(n: int) -> int:
    """Pairs a tournament judges when no budget is given: 2n, at most every pair."""
    return min(2 * n, n * (n - 1) // 2)


class Tournament:
    """A budgeted, seeded choice of pairs for one prompt, then a Bradley-Terry decision.

    Sampling: first a random cycle through all ``n`` candidates (``n`` pairs,
    a path of ``n - 1`` when the budget has no more), so every candidate is
    judged twice and the comparison graph is connected. Then, while budget
    is left, rounds of up to two pairs aimed at the two ends that matter:
    the current top candidate against the strongest rival it has not met,
    and the current bottom against the weakest rival it has not met. The
    permutation comes from ``random.Random(seed)``; everything after is a
    function of the verdicts, so the same seed and verdicts give the same
    pairs (which is how a re-run finds its stored verdicts again).
    """

    def __init__(self, n: int, budget: int, seed: str) -> None:
        self.n = n
        self.budget = min(budget, n * (n - 1) // 2)
        order = list(range(n))
        random.Random(seed).shuffle(order)
        self.order = order
        self.judged: set[Pair] = set()

    def feasible(self) -> bool:
        """Whether the budget can connect every candidate (``n - 1`` pairs at least)."""
        return self.n >= 2 and self.budget >= self.n - 1

    def first_pairs(self) -> list[Pair]:
        cycle = [_ordered(self.order[k], self.order[(k + 1) % self.n]) for k in range(self.n)]
        return self._take(list(dict.fromkeys(cycle)))

    def next_pairs(self, current: Fit) -> list[Pair]:
        ranking = current.ranking(self.order)
        wanted = [
            self._unmet(ranking[0], ranking[1:]),
            self._unmet(ranking[-1], list(reversed(ranking[:-1]))),
        ]
        return self._take(list(dict.fromkeys(p for p in wanted if p is not None)))

    def _unmet(self, candidate: int, rivals: Sequence[int]) -> Pair | None:
        for rival in rivals:
            pair = _ordered(candidate, rival)
            if pair not in self.judged:
                return pair
        return None

    def _take(self, pairs: list[Pair]) -> list[Pair]:
        taken = pairs[: self.budget - len(self.judged)]
        self.judged.update(taken)
        return taken


def _ordered(i: int, j: int) -> Pair:
    return (i, j) if i < j else (j, i)


def tournament(
    verdicts: Sequence[PairVerdict], lengths: Sequence[int], confidence: float, order: Sequence[int]
) -> Decision:
    """Top against bottom of the Bradley-Terry posterior, skipped unless it separates them.

    Separated: the posterior probability that chosen is stronger than
    rejected is at least ``confidence``. Equal strengths rank in the
    tournament's seeded ``order``.
    """
    n = len(lengths)
    posterior = fit(n, votes(verdicts))
    ranking = posterior.ranking(order)
    chosen, rejected = ranking[0], ranking[-1]
    probability = posterior.probability_above(chosen, rejected)
    means = posterior.means
    details = {
        "strengths": [round(m, 6) for m in means],
        "sd": [round(posterior.covariance[i][i] ** 0.5, 6) for i in range(n)],
        "p_chosen_above_rejected": round(probability, 6),
        "verdicts": [list(v) for v in verdicts],
    }
    gap = means[chosen] - means[rejected]
    separated = probability >= confidence
    reason = (
        f"posterior probability that the top candidate is stronger than the bottom is "
        f"{probability:.3f}, {'at least' if separated else 'below'} {confidence:g}"
    )
    if not separated:
        return Decision(
            None, None, means[chosen], means[rejected], gap, reason, INSEPARABLE, details
        )
    return Decision(chosen, rejected, means[chosen], means[rejected], gap, reason, details=details)
