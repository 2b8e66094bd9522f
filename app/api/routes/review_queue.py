"""/v1/reviews/queue: comparisons a jury split on, for human review."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import DatabaseDep
from app.api.errors import error_responses
from app.api.schemas import JuryVoteOut, VerdictOut
from app.errors import InvalidInputError
from app.labeling import review_queue
from app.labeling.review_queue import QueueEntry
from app.labeling.text_rules import JudgeSpec
from app.store.limits import INT64_MAX
from app.store.review_queue import QueueFilters

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


class QueueItemOut(BaseModel):
    comparison_id: uuid.UUID
    external_id: str | None
    judge: str
    prompt: Any
    response_a: Any
    response_b: Any
    metadata: dict[str, Any] | None
    created_at: datetime
    verdict: VerdictOut = Field(description="The jury's current verdict, with its disagreement.")
    votes: list[JuryVoteOut] = Field(description="Every member's vote in that jury run.")

    @classmethod
    def build(cls, entry: QueueEntry) -> QueueItemOut:
        comparison = entry.comparison
        return cls(
            comparison_id=comparison.id,
            external_id=comparison.external_id,
            judge=comparison.judge,
            prompt=comparison.prompt,
            response_a=comparison.response_a,
            response_b=comparison.response_b,
            metadata=comparison.meta,
            created_at=comparison.created_at,
            verdict=VerdictOut.model_validate(entry.verdict),
            votes=[JuryVoteOut.model_validate(v) for v in entry.votes],
        )


class QueuePageOut(BaseModel):
    items: list[QueueItemOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


@router.get("/queue", response_model=QueuePageOut, responses=error_responses(422))
async def get_review_queue(
    db: DatabaseDep,
    min_disagreement: Annotated[
        float,
        Query(ge=0, le=1, description="Disagreement at or above this (0.33: 2-1 splits of three)."),
    ],
    judge: Annotated[
        JudgeSpec | None, Query(description="Only this jury (its name or spec).")
    ] = None,
    batch_id: Annotated[uuid.UUID | None, Query(description="Only this batch.")] = None,
    include_reviewed: Annotated[
        bool, Query(description="Also pairs a human has labeled already.")
    ] = False,
    cursor: Annotated[
        str | None, Query(max_length=32, description="next_cursor of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> QueuePageOut:
    """Comparisons whose current jury verdict has at least `min_disagreement`, oldest first.

    Each comes with every member's vote. Post a human's label with
    `POST /v1/comparisons/{comparison_id}/reviews`; reviewed pairs then
    leave the queue.
    """
    filters = QueueFilters(min_disagreement, judge, batch_id, include_reviewed)
    entries, after = await review_queue.page(db, filters, after=_decode(cursor), limit=limit)
    return QueuePageOut(
        items=[QueueItemOut.build(e) for e in entries],
        next_cursor=None if after is None else str(after),
    )


def _decode(cursor: str | None) -> int | None:
    """The verdict id a cursor names; a forged one is a 422."""
    if cursor is None:
        return None
    # isdigit() alone accepts "²" and other digits int() refuses; ids are 64-bit.
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19:
        raise InvalidInputError("cursor is not one this API returned", field="cursor")
    after = int(cursor)
    if after > INT64_MAX:
        raise InvalidInputError("cursor is not one this API returned", field="cursor")
    return after
