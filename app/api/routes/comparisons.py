"""/v1/comparisons: judge a pair, fetch one, list them."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from app.api.deps import DatabaseDep, LabelerDep
from app.api.errors import error_responses
from app.api.limits import check_metadata
from app.api.schemas import ComparisonCreate, ComparisonOut, ComparisonPage
from app.errors import InvalidInputError, NotFoundError
from app.labeling.inputs import PairIn
from app.labeling.text_rules import JudgeSpec, UtcDatetime
from app.store import comparisons
from app.store.comparisons import ComparisonFilters

router = APIRouter(prefix="/v1/comparisons", tags=["comparisons"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ComparisonOut,
    responses={
        200: {"model": ComparisonOut, "description": "A stored verdict was reused."},
        **error_responses(400, 413, 422, 502, 503),
    },
)
async def create_comparison(
    body: ComparisonCreate, labeler: LabelerDep, response: Response
) -> ComparisonOut:
    """Judge a pair in both orders and store the verdict with its calls.

    The same pair with the same judge configuration returns the stored
    verdict (status 200, `reused: true`) without calling the model, unless
    `force` is set.
    """
    check_metadata(body.metadata, labeler.settings)
    pair = PairIn.model_validate(
        body.model_dump(exclude={"judge", "force", "constitution", "principles"})
    )
    under = labeler.under(body.constitution, body.principles)
    result = await labeler.compare(pair, body.judge, force=body.force, under=under)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return ComparisonOut.build(result.comparison, reused=not result.created)


@router.get(
    "/{comparison_id}",
    response_model=ComparisonOut,
    responses=error_responses(404, 422),
)
async def get_comparison(comparison_id: uuid.UUID, db: DatabaseDep) -> ComparisonOut:
    """One comparison with its current verdict, earlier verdicts and every judge call."""
    async with db.transaction() as session:
        found = await comparisons.get(session, comparison_id)
    if found is None:
        raise NotFoundError(f"no comparison {comparison_id}")
    return ComparisonOut.build(found)


@router.get("", response_model=ComparisonPage, responses=error_responses(422))
async def list_comparisons(
    db: DatabaseDep,
    judge: Annotated[JudgeSpec | None, Query(description="Judge name or provider:model.")] = None,
    winner: Annotated[Literal["a", "b", "tie"] | None, Query()] = None,
    status_: Annotated[
        Literal["pending", "labeled", "failed"] | None, Query(alias="status")
    ] = None,
    batch_id: Annotated[uuid.UUID | None, Query(description="Only this batch.")] = None,
    created_after: Annotated[UtcDatetime | None, Query()] = None,
    created_before: Annotated[UtcDatetime | None, Query()] = None,
    cursor: Annotated[
        str | None, Query(max_length=256, description="next_cursor of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ComparisonPage:
    """Comparisons oldest first, filtered, with cursor pagination."""
    filters = ComparisonFilters(
        judge=judge,
        winner=winner,
        status=status_,
        batch_id=batch_id,
        created_after=created_after,
        created_before=created_before,
    )
    async with db.transaction() as session:
        rows = await comparisons.page(session, filters, after=_decode(cursor), limit=limit + 1)
    next_cursor = (
        _encode(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    )
    return ComparisonPage(
        items=[ComparisonOut.build(row) for row in rows[:limit]], next_cursor=next_cursor
    )


def _encode(created_at: datetime, comparison_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{comparison_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The position a cursor names; a forged one is a 422, whatever its bytes decode to."""
    if cursor is None:
        return None
    try:
        created_at, comparison_id = base64.urlsafe_b64decode(cursor).decode().split("|")
        stamp = datetime.fromisoformat(created_at)
        if stamp.tzinfo is None:
            raise ValueError("a cursor's time has a zone")
        # Out of UTC's range (an offset near year 1 or 9999) overflows here.
        return stamp.astimezone(UTC), uuid.UUID(comparison_id)
    except (ValueError, OverflowError):
        raise InvalidInputError("cursor is not one this API returned", field="cursor") from None
