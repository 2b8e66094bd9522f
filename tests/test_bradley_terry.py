"""The Bradley-Terry posterior: votes from verdicts, and recovering a known order."""

from __future__ import annotations

import itertools
import random

import pytest

from app.labeling.rounds.bradley_terry import Fit, fit, votes


def verdicts_for(order: list[int], pairs: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Verdicts of a perfectly consistent judge whose ranking is ``order`` (best first)."""
    rank = {candidate: position for position, candidate in enumerate(order)}
    return [(i, j, "a" if rank[i] < rank[j] else "b") for i, j in pairs]


class TestVotes:
    @pytest.mark.parametrize(
        ("verdict", "expected"),
        [
            ((0, 1, "a"), [(0, 1), (0, 1)]),
            ((0, 1, "b"), [(1, 0), (1, 0)]),
            ((0, 1, "tie"), [(0, 1), (1, 0)]),
        ],
    )
    def test_each_order_is_one_vote(
        self, verdict: tuple[int, int, str], expected: list[tuple[int, int]]
    ) -> None:
        """A consistent win is two votes for the winner; a tie is one vote each way."""
        assert votes([verdict]) == expected

    def test_an_unknown_winner_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown winner"):
            votes([(0, 1, "first")])


class TestRecovery:
    @pytest.mark.parametrize(
        "order",
        [[0, 1], [1, 0], [2, 0, 1], [3, 1, 0, 2], [4, 2, 0, 1, 3, 5], [7, 6, 5, 4, 3, 2, 1, 0]],
    )
    def test_round_robin_recovers_the_order(self, order: list[int]) -> None:
        """Every pair judged by a consistent judge: the ranking is the judge's order."""
        pairs = list(itertools.combinations(range(len(order)), 2))
        posterior = fit(len(order), votes(verdicts_for(order, pairs)))
        assert posterior.ranking() == order

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_a_connected_chain_recovers_the_order(self, seed: int) -> None:
        """Only neighbours in the true order judged (n - 1 pairs): the order still comes back."""
        order = list(range(6))
        random.Random(seed).shuffle(order)
        chain = [tuple(sorted(p)) for p in itertools.pairwise(order)]
        posterior = fit(6, votes(verdicts_for(order, chain)))  # type: ignore[arg-type]
        assert posterior.ranking() == order

    def test_noisy_votes_recover_the_order_with_enough_of_them(self) -> None:
        """Each of 40 comparisons per pair goes the right way with probability 0.7."""
        rng = random.Random(7)
        order = [2, 0, 3, 1]
        rank = {c: p for p, c in enumerate(order)}
        observed = []
        for i, j in itertools.combinations(range(4), 2):
            better, worse = (i, j) if rank[i] < rank[j] else (j, i)
            for _ in range(40):
                observed.append((better, worse) if rng.random() < 0.7 else (worse, better))
        assert fit(4, observed).ranking() == order


class TestSeparation:
    def test_consistent_votes_separate_top_from_bottom(self) -> None:
        pairs = list(itertools.combinations(range(4), 2))
        posterior = fit(4, votes(verdicts_for([0, 1, 2, 3], pairs)))
        assert posterior.probability_above(0, 3) > 0.99
        assert posterior.probability_above(3, 0) < 0.01

    def test_ties_everywhere_separate_nothing(self) -> None:
        pairs = list(itertools.combinations(range(3), 2))
        posterior = fit(3, votes([(i, j, "tie") for i, j in pairs]))
        assert posterior.probability_above(0, 2) == pytest.approx(0.5, abs=1e-6)

    def test_no_votes_is_the_prior(self) -> None:
        posterior = fit(3, [])
        assert posterior.means == (0.0, 0.0, 0.0)
        assert posterior.probability_above(0, 1) == 0.5

    def test_equal_means_rank_in_the_tiebreak_order(self) -> None:
        posterior = Fit((0.0, 0.0, 1.0), ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
        assert posterior.ranking([1, 0, 2]) == [2, 1, 0]

    def test_one_candidate_is_refused(self) -> None:
        with pytest.raises(ValueError, match="two candidates"):
            fit(1, [])
