"""What the templates show: a served item and a queue's row, rendered and sanitised."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from app.api.review_page.render import conversation, markdown, word_diff
from app.labeling.review.queues import MachineVerdict, QueueProgress, ServedItem


@dataclass(frozen=True)
class Side:
    id: str
    title: str
    key: str
    html: Markup


@dataclass(frozen=True)
class ReviewerRow:
    name: str
    answers: int
    with_others: str
    with_judges: list[str]


@dataclass(frozen=True)
class QueueRow:
    id: uuid.UUID
    name: str
    kind: str
    overlap: int
    items: int
    done: int
    mine: int
    left_for_you: int
    alpha: str
    pairwise: str
    reviewers: list[ReviewerRow]


def build(served: ServedItem, max_diff_words: int) -> dict[str, Any]:
    """The item view's context: prompt, both sides, their diff, guidelines, machine verdicts."""
    return {
        "assignment_id": served.assignment_id,
        "prompt": conversation(served.prompt),
        "sides": [
            Side("left", "Left", "1", markdown(served.left)),
            Side("right", "Right", "2", markdown(served.right)),
        ],
        "diff": word_diff(served.left, served.right, max_diff_words),
        "guidelines": markdown(served.guidelines) if served.guidelines.strip() else None,
        # Blind by default: the queue decides, and a blind queue's item carries none.
        "machine": [_machine(v) for v in served.machine or ()] if served.show_machine else [],
    }


@dataclass(frozen=True)
class Machine:
    summary: str
    rationale: Markup | None
    """The judge's stated reason: model output, so rendered and sanitised like a response."""


def _machine(verdict: MachineVerdict) -> Machine:
    said = {"left": "the left response", "right": "the right response", "tie": "a tie"}
    parts = [f"{verdict.judge}: {said[verdict.winner]}"]
    if verdict.confidence is not None:
        parts.append(f"confidence {verdict.confidence:.2f}")
    if verdict.position_consistent is False:
        parts.append("changed with the order shown")
    rationale = markdown(verdict.rationale) if verdict.rationale.strip() else None
    return Machine(", ".join(parts), rationale)


def queue_row(progress: QueueProgress, agreement: dict[str, Any] | None) -> QueueRow:
    """A queue's line on the list: progress, and agreement (from the report's own figures)."""
    agreement = agreement or {}
    judges: dict[str, list[str]] = {}
    for line in agreement.get("reviewer_judge", []):
        judges.setdefault(line["reviewer"], []).append(
            f"{line['judge']}: {share(line['agreement'])}"
        )
    reviewers = [
        ReviewerRow(
            line["reviewer"],
            line["answers"],
            share(line["agreement_with_others"]),
            judges.get(line["reviewer"], []),
        )
        for line in agreement.get("per_reviewer", [])
    ]
    alpha = agreement.get("alpha") or {}
    return QueueRow(
        progress.queue_id,
        progress.name,
        progress.kind,
        progress.overlap,
        progress.items,
        progress.done,
        progress.answered_by_you,
        progress.left_for_you,
        number(alpha.get("value")) + (f" (n {alpha['n']})" if alpha.get("n") else ""),
        share(agreement.get("pairwise")),
        reviewers,
    )


def share(estimate: dict[str, Any] | None) -> str:
    """A share as the page shows it: 83.3% (71.0-92.0%, n 30); a dash when there is none."""
    if not estimate or estimate.get("value") is None:
        return "—"
    text = percent(estimate["value"])
    if estimate.get("ci"):
        low, high = estimate["ci"]
        text += f" ({low * 100:.1f}\u2013{high * 100:.1f}%"
        return text + f", n {estimate['n']})"
    return text + f" (n {estimate['n']})"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
