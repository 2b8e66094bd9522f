"""The report's ``review_agreement`` shown: terminal tables and the HTML page's tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from app.reports.html_tables import Column, Kind, Spec, Table, table


def _est(title: str, *path: str) -> Column:
    return Column(title, path, "pct", estimate=True)


def _num(title: str, *path: str, kind: Kind = "int") -> Column:
    return Column(title, path, kind)


ALPHA_NOTE = (
    "Krippendorff's alpha (nominal over a/b/tie; items one reviewer answered are left out) and "
    "pairwise agreement: the share of equal answers over every two answers to one item. On an "
    "audit queue (a uniform random sample of a batch) they are unbiased estimates for the batch."
)
QUEUES = Spec(
    "table-review-queues",
    "Reviewers: agreement per queue",
    ALPHA_NOTE,
    ("Queue", "Kind"),
    (
        _num("k", "overlap"),
        _num("Items", "items"),
        _num("Answered items", "answered_items"),
        _num("Answers", "answers"),
        _num("Reviewers", "reviewers"),
        _num("Krippendorff's alpha", "alpha", "value", kind="num"),
        _num("Items in alpha", "alpha", "n"),
        _est("Pairwise agreement", "pairwise"),
    ),
)
REVIEWER_PAIRS = Spec(
    "table-reviewer-pairs",
    "Reviewers against each other",
    "Over the items of the queue both answered.",
    ("Queue", "Reviewer A", "Reviewer B"),
    (_est("Agreement", "agreement"),),
)
PER_REVIEWER = Spec(
    "table-per-reviewer",
    "Each reviewer against the others",
    "Over every answer another reviewer gave to the same item.",
    ("Queue", "Reviewer"),
    (_num("Answers", "answers"), _est("Agreement", "agreement_with_others")),
)
REVIEWER_JUDGE = Spec(
    "table-reviewer-judge",
    "Reviewers against judges",
    "The share of a reviewer's answers equal to the judge's current verdict on the same pair.",
    ("Reviewer", "Judge"),
    (_est("Agreement", "agreement"),),
)


def html_tables(report: dict[str, Any]) -> list[Table]:
    """The page's review tables; none for a report without reviews (an older JSON file)."""
    review = report.get("review_agreement")
    if not isinstance(review, dict) or not review.get("queues"):
        return []
    queues = review["queues"]
    base = "/review_agreement/queues"
    pairs: list[tuple[Any, str, tuple[str, ...]]] = []
    people: list[tuple[Any, str, tuple[str, ...]]] = []
    for i, block in enumerate(queues):
        name = str(block.get("queue"))
        for j, row in enumerate(block.get("reviewer_pairs") or []):
            labels = (name, str(row.get("reviewer_a")), str(row.get("reviewer_b")))
            pairs.append((row, f"{base}/{i}/reviewer_pairs/{j}", labels))
        for j, row in enumerate(block.get("per_reviewer") or []):
            people.append((row, f"{base}/{i}/per_reviewer/{j}", (name, str(row.get("reviewer")))))
    judged = [
        (row, f"/review_agreement/reviewer_judge/{i}", (str(row["reviewer"]), str(row["judge"])))
        for i, row in enumerate(review.get("reviewer_judge") or [])
    ]
    listed = [
        (block, f"{base}/{i}", (str(block.get("queue")), str(block.get("kind"))))
        for i, block in enumerate(queues)
    ]
    return [
        table(QUEUES, listed),
        table(REVIEWER_PAIRS, pairs),
        table(PER_REVIEWER, people),
        table(REVIEWER_JUDGE, judged),
    ]


def text_tables(
    report: dict[str, Any], estimate: Callable[[dict[str, Any]], str]
) -> list[RenderableType]:
    """Terminal tables of the review agreement; none when no queue exists."""
    review = report.get("review_agreement") or {}
    if not review.get("queues"):
        return []
    queues = RichTable(title="Reviewers: agreement per queue", title_justify="left")
    scope = review.get("scope") or {}
    if scope.get("judge") or scope.get("batch_id"):
        named = [f"{k} {scope[k]}" for k in ("judge", "batch_id") if scope.get(k)]
        queues.caption = f"Answers on this report's comparisons only: {', '.join(named)}."
    for column in ("queue", "kind", "k", "items", "answers", "reviewers", "alpha", "pairwise"):
        queues.add_column(column)
    people = RichTable(title="Each reviewer", title_justify="left")
    for column in ("queue", "reviewer", "answers", "agreement with others"):
        people.add_column(column)
    for block in review["queues"]:
        alpha = block["alpha"]["value"]
        queues.add_row(
            Text(block["queue"]),
            block["kind"],
            str(block["overlap"]),
            str(block["items"]),
            str(block["answers"]),
            str(block["reviewers"]),
            "—" if alpha is None else f"{alpha:.3f} (n={block['alpha']['n']})",
            estimate(block["pairwise"]),
        )
        for row in block["per_reviewer"]:
            people.add_row(
                Text(block["queue"]),
                Text(row["reviewer"]),
                str(row["answers"]),
                estimate(row["agreement_with_others"]),
            )
    parts: list[RenderableType] = [queues, people]
    if review.get("reviewer_judge"):
        judges = RichTable(title="Reviewers against judges", title_justify="left")
        for column in ("reviewer", "judge", "agreement"):
            judges.add_column(column)
        for row in review["reviewer_judge"]:
            judges.add_row(Text(row["reviewer"]), Text(row["judge"]), estimate(row["agreement"]))
        parts.append(judges)
    return parts
