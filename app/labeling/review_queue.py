"""The review queue: pairs a jury split on, routed to humans.

A comparison is in the queue when its current verdict is a jury's whose
disagreement is at least the threshold, and (unless asked otherwise) no
human has labeled the pair yet. ``GET /v1/reviews/queue`` pages through it;
``referee review-queue`` writes it as canonical pair JSONL whose ``id`` is
the comparison id, so a reviewer's label goes back with
``POST /v1/comparisons/{id}/reviews``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import IO, Any

from app.errors import InvalidInputError
from app.store.db import Database
from app.store.juries import votes_of
from app.store.models import Comparison, JuryVote, Verdict
from app.store.review_queue import QueueFilters, review_queue

PAGE = 500


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A comparison in the queue, its current (jury) verdict and that run's votes."""

    comparison: Comparison
    verdict: Verdict
    votes: list[JuryVote]


def check(filters: QueueFilters) -> None:
    if not 0 <= filters.min_disagreement <= 1:
        raise InvalidInputError(
            f"min_disagreement must be between 0 and 1, got {filters.min_disagreement}",
            field="min_disagreement",
        )


async def page(
    db: Database, filters: QueueFilters, *, after: int | None, limit: int
) -> tuple[list[QueueEntry], int | None]:
    """One page of the queue, oldest verdict first, and the cursor of the next (None at the end)."""
    check(filters)
    async with db.transaction() as session:
        found = await review_queue(session, filters, after=after, limit=limit + 1)
    entries = [QueueEntry(c, v, votes_of(c, v.id)) for c, v in found[:limit]]
    next_cursor = entries[-1].verdict.id if len(found) > limit else None
    return entries, next_cursor


async def write_jsonl(db: Database, filters: QueueFilters, out: IO[str]) -> int:
    """Write the whole queue as canonical pairs, one per line; returns how many."""
    written, after = 0, None
    while True:
        entries, after = await page(db, filters, after=after, limit=PAGE)
        for entry in entries:
            out.write(json.dumps(pair_record(entry), ensure_ascii=False) + "\n")
        written += len(entries)
        if after is None:
            return written


def pair_record(entry: QueueEntry) -> dict[str, Any]:
    """The pair as canonical input, the jury's decision under ``metadata.jury``."""
    comparison, verdict = entry.comparison, entry.verdict
    return {
        "id": str(comparison.id),
        "prompt": comparison.prompt,
        "response_a": comparison.response_a,
        "response_b": comparison.response_b,
        "metadata": {
            **(comparison.meta or {}),
            "jury": {
                "comparison_id": str(comparison.id),
                "external_id": comparison.external_id,
                "judge": comparison.judge,
                "winner": verdict.winner,
                "disagreement": verdict.disagreement,
                "votes": [vote_record(vote) for vote in entry.votes],
            },
        },
    }


def vote_record(vote: JuryVote) -> dict[str, Any]:
    return {
        "member": vote.member,
        "winner": vote.winner,
        "confidence": vote.confidence,
        "soft_preference": vote.soft_preference,
        "error_class": vote.error_class,
    }
