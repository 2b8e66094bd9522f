"""A Bradley-Terry posterior over a prompt's candidates, from pairwise verdicts.

The fit is ``choix.ep_pairwise``: expectation propagation gives a Gaussian
posterior (mean and covariance) over the candidates' log-strengths, under
an isotropic Gaussian prior of variance ``1 / PRIOR_PRECISION``. The prior
keeps the strengths finite when a judge is perfectly consistent (where the
maximum-likelihood fit diverges) and when some pairs were never judged.

Votes: every verdict was judged in both orders, and each order is one vote.
A consistent win is two votes for the winner; a tie (the judge's own, or a
position-biased pair whose two orders disagree) is one vote each way, which
pulls the two strengths together without ranking either above the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import choix
import numpy as np

PRIOR_PRECISION = 0.1
"""``alpha`` of choix: prior variance 10 on each log-strength (a standard deviation near 3.2)."""

Vote = tuple[int, int]
"""(winner, loser) as candidate indices."""


def votes(verdicts: Iterable[tuple[int, int, str]]) -> list[Vote]:
    """The votes of verdicts ``(a, b, winner)`` with winner ``a``, ``b`` or ``tie``."""
    found: list[Vote] = []
    for a, b, winner in verdicts:
        if winner == "a":
            found += [(a, b), (a, b)]
        elif winner == "b":
            found += [(b, a), (b, a)]
        elif winner == "tie":
            found += [(a, b), (b, a)]
        else:
            raise ValueError(f"unknown winner {winner!r}")
    return found


@dataclass(frozen=True, slots=True)
class Fit:
    """The posterior: each candidate's mean log-strength and the covariance between them."""

    means: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]

    def ranking(self, tiebreak: Sequence[int] | None = None) -> list[int]:
        """Candidate indices, strongest first; equal means keep the ``tiebreak`` order."""
        order = list(tiebreak) if tiebreak is not None else list(range(len(self.means)))
        position = {index: rank for rank, index in enumerate(order)}
        return sorted(order, key=lambda i: (-round(self.means[i], 6), position[i]))

    def sd_of_difference(self, i: int, j: int) -> float:
        c = self.covariance
        return math.sqrt(max(c[i][i] + c[j][j] - 2 * c[i][j], 0.0))

    def probability_above(self, i: int, j: int) -> float:
        """Posterior probability that candidate ``i`` is stronger than candidate ``j``."""
        sd = self.sd_of_difference(i, j)
        difference = self.means[i] - self.means[j]
        if sd == 0.0:
            return 0.5 if difference == 0 else float(difference > 0)
        return 0.5 * (1.0 + math.erf(difference / (sd * math.sqrt(2.0))))


def fit(candidates: int, observed: Sequence[Vote], prior: float = PRIOR_PRECISION) -> Fit:
    """The Bradley-Terry posterior of ``candidates`` items given ``observed`` votes."""
    if candidates < 2:
        raise ValueError("a fit needs at least two candidates")
    if not observed:
        variance = 1.0 / prior
        covariance = tuple(
            tuple(variance if i == j else 0.0 for j in range(candidates)) for i in range(candidates)
        )
        return Fit(tuple(0.0 for _ in range(candidates)), covariance)
    mean, cov = choix.ep_pairwise(candidates, list(observed), prior)
    return Fit(
        tuple(float(x) for x in mean),
        tuple(tuple(float(x) for x in row) for row in np.asarray(cov)),
    )
