"""``referee report --rounds``: the head-to-head statistics equal a hand count."""

from __future__ import annotations

from typing import Any

import pytest

from app.reports.metrics import Bootstrap
from app.reports.rounds import head_to_head, render_text
from app.store.rounds import MatchupOutcome

BOOT = Bootstrap(resamples=200, seed=0)


def outcome(
    winner: str | None, length_a: int = 10, length_b: int = 10, **kw: Any
) -> MatchupOutcome:
    """A matchup: ``winner`` a (the round), b (the parent), tie, or None with ``status``."""
    status = kw.pop("status", "labeled" if winner is not None else "failed")
    consistent = kw.pop("consistent", winner != "tie" if winner is not None else None)
    return MatchupOutcome("k", status, winner, consistent, length_a, length_b)


# Each case: the matchups, then by hand: wins, losses, ties, failed, pending, the win
# rate's denominator (verdicts only), longer-wins (won, of decisive uneven pairs), and
# the mean lengths of the round's and the parent's answers over the verdicts.
CASES = [
    pytest.param(
        [outcome("a", 30, 10), outcome("a", 5, 20), outcome("b", 10, 40), outcome("tie")],
        dict(wins=2, losses=1, ties=1, failed=0, pending=0, n=4, longer=(2, 3)),
        (13.75, 20.0),
        id="two-wins-a-loss-a-tie",
    ),
    pytest.param(
        [outcome("a", 30, 10), outcome(None), outcome(None), outcome("b", 10, 40)],
        dict(wins=1, losses=1, ties=0, failed=2, pending=0, n=2, longer=(2, 2)),
        (20.0, 25.0),
        id="failures-never-count-as-wins-nor-in-the-denominator",
    ),
    pytest.param(
        [outcome(None, status="pending"), outcome("a", 10, 10), outcome("tie", consistent=False)],
        dict(wins=1, losses=0, ties=1, failed=0, pending=1, n=2, longer=(0, 0)),
        (10.0, 10.0),
        id="pending-left-out-equal-lengths-not-in-longer-wins",
    ),
    pytest.param(
        [outcome(None), outcome(None)],
        dict(wins=0, losses=0, ties=0, failed=2, pending=0, n=0, longer=(0, 0)),
        (None, None),
        id="only-failures-no-win-rate",
    ),
    pytest.param(
        [outcome("b", 50, 10)] * 3 + [outcome("a", 50, 10)],
        dict(wins=1, losses=3, ties=0, failed=0, pending=0, n=4, longer=(1, 4)),
        (50.0, 10.0),
        id="parent-wins-shorter-answers-win",
    ),
]


@pytest.mark.parametrize(("outcomes", "hand", "lengths"), CASES)
def test_the_head_to_head_equals_a_hand_count(
    outcomes: list[MatchupOutcome], hand: dict[str, Any], lengths: tuple[Any, Any]
) -> None:
    """Counts, rates and length statistics are exactly the hand count of the table."""
    result = head_to_head(outcomes, BOOT)
    counts = result["counts"]
    assert (counts["wins"], counts["losses"], counts["ties"]) == (
        hand["wins"],
        hand["losses"],
        hand["ties"],
    )
    assert (counts["failed"], counts["pending"]) == (hand["failed"], hand["pending"])
    n = hand["n"]
    assert result["win_rate"]["n"] == result["tie_rate"]["n"] == n
    if n:
        assert result["win_rate"]["value"] == pytest.approx(hand["wins"] / n)
        assert result["tie_rate"]["value"] == pytest.approx(hand["ties"] / n)
        assert result["loss_rate"]["value"] == pytest.approx(hand["losses"] / n)
        low, high = result["win_rate"]["ci"]
        assert low <= hand["wins"] / n <= high
    else:
        assert result["win_rate"]["value"] is None
    won, of = hand["longer"]
    assert result["length"]["longer_wins"]["n"] == of
    if of:
        assert result["length"]["longer_wins"]["value"] == pytest.approx(won / of)
    assert (result["length"]["mean_round"], result["length"]["mean_parent"]) == lengths


def test_the_interval_is_the_metrics_bootstrap() -> None:
    """Same seed, same interval; the interval narrows as the verdicts grow."""
    few = head_to_head([outcome("a"), outcome("b")] * 5, BOOT)["win_rate"]
    many = head_to_head([outcome("a"), outcome("b")] * 500, BOOT)["win_rate"]
    assert few == head_to_head([outcome("a"), outcome("b")] * 5, BOOT)["win_rate"]
    assert few["value"] == many["value"] == 0.5
    assert many["ci"][1] - many["ci"][0] < few["ci"][1] - few["ci"][0]


def test_the_text_report_says_what_is_not_counted() -> None:
    """The text names the parent, the rates and the failed judgments left out."""
    round_ = {
        "name": "r2",
        "policy": "openai:policy",
        "checkpoint": "step-200",
        "strategy": "best-vs-worst",
        "judge": "openai:judge",
        "prompts": 4,
        "stage": "done",
    }
    parent = {**round_, "name": "r1", "checkpoint": "step-100"}
    h2h = head_to_head([outcome("a", 30, 10), outcome(None), outcome("tie")], BOOT)
    text = render_text(
        {
            "rounds": [
                {**parent, "parent": None, "vs_parent": None},
                {**round_, "parent": parent, "vs_parent": h2h},
            ]
        }
    )
    assert "round r1" in text
    assert "no parent round" in text
    assert "vs parent r1 (openai:policy @ step-100) on 3 shared prompts" in text
    assert "win rate      50.0%" in text
    assert "1 failed, 0 pending (neither counted)" in text
