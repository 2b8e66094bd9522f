"""Agreement between reviewers (Krippendorff's alpha, pairwise) and with judges, in the report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.reports.build import ReportOptions, build_report
from app.reports.html import render_report
from app.reports.metrics import Bootstrap
from app.reports.review_agreement import krippendorff_alpha, queue_agreement
from app.reports.text import render
from tests.review_seed import Env, PairSpec, force_order


@pytest.fixture
def env(database_url: str) -> Iterator[Env]:
    environment = Env(database_url)
    yield environment
    environment.close()


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the nominal example:
# four observers, twelve units, "." missing. Published alpha = 0.743.
TEXTBOOK = {
    "A": "1 2 3 3 2 1 4 1 2 . . .",
    "B": "1 2 3 3 2 2 4 1 2 5 . 3",
    "C": ". 3 3 3 2 3 4 2 2 5 1 .",
    "D": "1 2 3 3 2 4 4 1 2 5 1 .",
}


def _units(rows: dict[str, str]) -> dict[int, dict[str, str]]:
    units: dict[int, dict[str, str]] = {}
    for rater, line in rows.items():
        for unit, value in enumerate(line.split()):
            if value != ".":
                units.setdefault(unit, {})[rater] = value
    return units


def test_alpha_on_the_textbook_example() -> None:
    """The published nominal example gives the published 0.743."""
    assert krippendorff_alpha(_units(TEXTBOOK)) == pytest.approx(0.743, abs=5e-4)


@pytest.mark.parametrize(
    ("units", "alpha"),
    [
        # o_aa = 2, o_ab = o_ba = 1, o_bb = 4; n = 8 (a 3, b 5): 1 - 7 * 2 / (2 * 3 * 5)
        ([("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")], 1 - 7 * 2 / 30),
        ([("a", "a"), ("b", "b")], 1.0),
        # three raters: o_aa = o_ab = o_ba = 1, o_bb = 3; n = 6 (a 2, b 4): 1 - 5 * 2 / 16
        ([("a", "a", "b"), ("b", "b", "b")], 1 - 5 * 2 / 16),
        # a and b swapped throughout: systematic disagreement, alpha below zero
        ([("a", "b"), ("b", "a")], 1 - 3 * 4 / (2 * 2 * 2)),
        ([("a", "a"), ("a", "a")], None),  # one value only: undefined
        ([("a",), ("b",)], None),  # no item has two answers
        ([("a", "tie"), ("tie", "tie"), ("b", "b")], 1 - 5 * 2 / (2 * (1 * 3 + 1 * 2 + 3 * 2))),
    ],
)
def test_alpha_against_hand_computed_values(
    units: list[tuple[str, ...]], alpha: float | None
) -> None:
    """Nominal alpha = 1 - (n - 1) * (off-diagonal coincidences) / (sum over c != k of n_c n_k)."""
    data = {i: {f"r{j}": label for j, label in enumerate(unit)} for i, unit in enumerate(units)}
    got = krippendorff_alpha(data)
    assert got == (None if alpha is None else pytest.approx(alpha))


def _answer_all(env: Env, queue_id: object, plan: dict[str, list[str]]) -> None:
    """Each reviewer answers the items in serving order with the given a/b/tie winners."""
    from app.labeling.review import queues

    for reviewer, winners in plan.items():
        for winner in winners:
            served = env.next(queue_id, reviewer)  # type: ignore[arg-type]
            assert served is not None
            force_order(env, served.assignment_id, "ab")
            press = {"a": "left", "b": "right", "tie": "tie"}[winner]
            env.tx(lambda s, a=served.assignment_id, r=reviewer, p=press: queues.answer(s, a, r, p))


def test_queue_agreement_pairwise_and_with_judges(env: Env) -> None:
    """Per queue: alpha, pairwise, per pair and per reviewer; each reviewer against each judge."""
    env.seed([PairSpec(f"p{i}", judge="judge-1", winner="a", disagreement=0.5) for i in range(4)])
    queue_id = env.queue(kind="disagreement", overlap=2)
    _answer_all(env, queue_id, {"ann": ["a", "a", "b", "b"], "bob": ["a", "b", "b", "b"]})
    result = env.tx(lambda s: queue_agreement(s, queue_id, Bootstrap(resamples=50)))
    assert result is not None
    assert result["alpha"] == {"value": pytest.approx(1 - 7 * 2 / 30), "n": 4}
    assert result["pairwise"]["value"] == 0.75
    assert result["pairwise"]["n"] == 4
    [pair] = result["reviewer_pairs"]
    assert (pair["reviewer_a"], pair["reviewer_b"], pair["agreement"]["value"]) == (
        "ann",
        "bob",
        0.75,
    )
    judged = {
        (r["reviewer"], r["judge"]): r["agreement"]["value"] for r in result["reviewer_judge"]
    }
    assert judged == {("ann", "judge-1"): 0.5, ("bob", "judge-1"): 0.25}


def test_the_report_shows_review_agreement(env: Env) -> None:
    """referee report: review_agreement in the JSON, a table in text and in HTML."""
    env.seed([PairSpec(f"p{i}", winner="a", disagreement=0.5) for i in range(2)])
    queue_id = env.queue(name="hard-ones", kind="disagreement", overlap=2)
    _answer_all(env, queue_id, {"ann": ["a", "b"], "bob": ["a", "a"]})
    report = env.run(build_report(env.db, ReportOptions(bootstrap=Bootstrap(resamples=50))))
    [block] = report["review_agreement"]["queues"]
    assert block["queue"] == "hard-ones"
    assert block["pairwise"]["value"] == 0.5
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(render(report))
    assert "hard-ones" in console.export_text()
    page = render_report(report)
    assert 'data-metric="/review_agreement/queues/0/pairwise/value"' in page


@pytest.mark.parametrize(
    ("options", "answers", "judges"),
    [
        ({}, 6, {"judge-1", "judge-2"}),
        ({"judge": "judge-1"}, 4, {"judge-1"}),
        ({"batch": "b2"}, 4, {"judge-1", "judge-2"}),
        ({"judge": "judge-2", "batch": "b2"}, 2, {"judge-2"}),
    ],
)
def test_review_agreement_honours_the_reports_judge_and_batch(
    env: Env, options: dict[str, str], answers: int, judges: set[str]
) -> None:
    """--judge/--batch narrow the review agreement to answers on those comparisons, and say so."""
    env.seed(
        [
            PairSpec("p0", judge="judge-1", winner="a", disagreement=0.5, batch="b1"),
            PairSpec("p1", judge="judge-1", winner="a", disagreement=0.5, batch="b2"),
            PairSpec("q0", judge="judge-2", winner="b", disagreement=0.5, batch="b2"),
        ]
    )
    one = env.queue(name="one", kind="disagreement", overlap=2)
    _answer_all(env, one, {"ann": ["a", "a", "b"], "bob": ["a", "b", "b"]})
    report = env.run(
        build_report(env.db, ReportOptions(bootstrap=Bootstrap(resamples=20), **options))
    )
    review = report["review_agreement"]
    assert sum(block["answers"] for block in review["queues"]) == answers
    assert {row["judge"] for row in review["reviewer_judge"]} == judges
    assert review["scope"]["judge"] == options.get("judge")
    assert (review["scope"]["batch_id"] is None) == ("batch" not in options)
