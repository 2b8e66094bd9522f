"""/v1/batches: submit a JSONL upload or JSON array, watch it, cancel it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field

from app.api.deps import LabelerDep
from app.api.errors import error_responses
from app.api.limits import text_body
from app.labeling import batch_api
from app.labeling.provider_batch import provider_batch_options
from app.labeling.text_rules import BatchName, ConstitutionId, JudgeSpec
from app.store.limits import INT32_MAX

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class RejectedLine(BaseModel):
    line: int
    reason: str


class BatchSubmitted(BaseModel):
    id: uuid.UUID
    name: str
    submitted: int
    new: int
    merged: int = Field(0, description="Lines repeating an earlier line's pair: judged once.")
    ruled: int = Field(
        0, description="Pairs with identical responses stored as a tie by rule, without a call."
    )
    gold_conflicts: int = Field(
        0,
        description="Pairs whose lines carry different human labels; the newest line's label is"
        " kept as gold.",
    )
    rejected: list[RejectedLine]


class BatchCounts(BaseModel):
    pending: int
    labeled: int
    failed: int
    cancelled: int


class ProviderBatchErrorOut(BaseModel):
    """One reason the provider gave for refusing a whole submission."""

    code: str | None
    message: str
    line: int | None


class ProviderBatchOut(BaseModel):
    """One submission to a provider's batch API (mode=provider-batch).

    `failed`: the provider refused it as a whole (see `errors`); none of its
    pairs was judged, they are pending again and the next run submits them.
    """

    provider: str
    provider_batch_id: str
    status: Literal["submitted", "collected", "cancelled", "failed"]
    provider_status: str | None
    errors: list[ProviderBatchErrorOut] = []
    pairs: int
    requests: int
    created_at: datetime


class BatchOut(BaseModel):
    id: uuid.UUID
    name: str
    judge: str
    status: Literal["open", "done", "cancelled"]
    submitted: int
    rejected: int
    counts: BatchCounts
    outcomes: dict[str, int]
    progress: float
    created_at: datetime
    provider_batches: list[ProviderBatchOut] = []


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchSubmitted,
    responses=error_responses(
        400,
        413,
        422,
        503,
        e400="The body is not UTF-8, or an unknown judge.",
        e422="An invalid query parameter, or no valid record in the body.",
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def submit_batch(
    request: Request,
    labeler: LabelerDep,
    judge: Annotated[
        JudgeSpec | None, Query(description="provider:model or a named judge.")
    ] = None,
    name: Annotated[
        BatchName | None, Query(description="Batch name; resubmitting a name resumes it.")
    ] = None,
    constitution: Annotated[
        ConstitutionId | None,
        Query(description="Judge under this constitution's principles (its id)."),
    ] = None,
    principles: Annotated[
        int, Query(ge=1, le=INT32_MAX, description="Principles sampled per pair.")
    ] = 1,
    mode: Annotated[
        Literal["live", "provider-batch"],
        Query(description="provider-batch: through the provider's batch API, at half price."),
    ] = "live",
    poll_interval: Annotated[
        float,
        Query(
            gt=0,
            le=86_400,
            allow_inf_nan=False,
            description="provider-batch: seconds between status checks.",
        ),
    ] = 30.0,
) -> dict[str, Any]:
    """Queue pairs (JSONL lines, or one JSON array) for judging; returns at once.

    Bad records are listed in `rejected` with their line numbers; the rest are queued.
    With `mode=provider-batch` they go through the provider's batch API (half price,
    results within 24 hours; `GET /v1/batches/{id}` shows the progress).
    """
    body = text_body(await request.body())
    under = labeler.under(constitution, principles)
    workers = request.app.state.workers
    concurrency = workers.options.concurrency if workers is not None else 16
    provider_batch = provider_batch_options(mode, poll_interval, concurrency)
    return await batch_api.submit(labeler, workers, body, judge, name, under, provider_batch)


@router.get("/{batch_id}", response_model=BatchOut, responses=error_responses(404, 422))
async def get_batch(batch_id: uuid.UUID, labeler: LabelerDep) -> dict[str, Any]:
    """Progress and counts. The results are `GET /v1/comparisons?batch_id=…`."""
    return await batch_api.describe(labeler, batch_id)


@router.post("/{batch_id}/cancel", response_model=BatchOut, responses=error_responses(404, 422))
async def cancel_batch(
    batch_id: uuid.UUID, request: Request, labeler: LabelerDep
) -> dict[str, Any]:
    """Stop judging: pending pairs become cancelled; finished ones stay."""
    return await batch_api.cancel(labeler, request.app.state.workers, batch_id)
