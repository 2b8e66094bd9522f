"""Human preferences as DPO rows (``referee export dpo --source human``).

One row per pair a human decided: the gold label that counts for the pair
(as the report ranks them: a review outranks an imported label, the newest
of a kind counts), chosen its winner and rejected the other response. A
review written from a queue answered by k reviewers carries their k votes
(the majority rule is in app.labeling.review.queues); a review posted to
``POST /v1/comparisons/{id}/reviews`` is one reviewer; an imported label
counts the annotator votes its data set gave, if any. Ties have no chosen
response and are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from app.export.options import Shape
from app.export.rows import Row, dpo_row


class HumanRow(NamedTuple):
    row: Row
    row_id: str
    prompt: Any
    external_id: str | None
    reviewer: str | None
    agreement: float | None
    """The share of the votes that name the winner (None without votes)."""
    reviewers: int | None
    """How many people decided the pair (None for an import without votes)."""


def _last_per_pair(records: Iterator[Any]) -> Iterator[Any]:
    """The last record of each run of one pair_key (the input is ordered by pair_key)."""
    held = None
    for record in records:
        if held is not None and record.pair_key != held.pair_key:
            yield held
        held = record
    if held is not None:
        yield held


def human_rows(records: Iterator[Any], shape: Shape) -> Iterator[HumanRow | None]:
    """A DPO row per decided pair; None for a pair whose human label is a tie."""
    for record in _last_per_pair(records):
        if record.winner == "tie":
            yield None
            continue
        a, b = record.response_a, record.response_b
        chosen, rejected = (a, b) if record.winner == "a" else (b, a)
        votes = record.votes or []
        count = len(votes) or (1 if record.source == "review" else None)
        agreement = sum(v == record.winner for v in votes) / len(votes) if votes else None
        yield HumanRow(
            dpo_row(record.prompt, chosen, rejected, shape),
            f"gold:{record.id}",
            record.prompt,
            record.external_id,
            record.reviewer,
            agreement,
            count,
        )
