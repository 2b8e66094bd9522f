"""/v1/feedback: thumbs-up/down from production, one at a time or in bulk."""

from __future__ import annotations

import io
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.api.deps import DatabaseDep, LabelerDep
from app.api.schemas import ErrorOut
from app.errors import BodyTooLargeError
from app.labeling import feedback
from app.labeling.feedback import FeedbackIn
from app.labeling.jsonl import read_records
from app.store.models import Feedback

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

_JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


class FeedbackOut(BaseModel):
    id: uuid.UUID
    idempotency_key: str
    prompt: Any
    completion: Any
    label: bool
    source: str | None
    user_id: str | None
    session_id: str | None
    metadata: dict[str, Any] | None
    occurred_at: datetime | None
    created_at: datetime
    duplicate: bool

    @classmethod
    def build(cls, row: Feedback, *, duplicate: bool) -> FeedbackOut:
        return cls(
            id=row.id,
            idempotency_key=row.idempotency_key,
            prompt=row.prompt,
            completion=row.completion,
            label=row.label,
            source=row.source,
            user_id=row.user_id,
            session_id=row.session_id,
            metadata=row.meta,
            occurred_at=row.occurred_at,
            created_at=row.created_at,
            duplicate=duplicate,
        )


class RejectedRecord(BaseModel):
    line: int
    reason: str


class BulkSummary(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedRecord]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackOut | BulkSummary,
    responses={
        200: {"description": "A duplicate (single) or a bulk summary."},
        409: {"model": ErrorOut, "description": "The idempotency key was used for another body."},
        413: {"model": ErrorOut, "description": "The body is over REFEREE_MAX_UPLOAD_MB."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object", "description": "One feedback record."},
                            {"type": "array", "items": {"type": "object"}},
                        ]
                    }
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def post_feedback(
    request: Request, db: DatabaseDep, labeler: LabelerDep, response: Response
) -> Any:
    """Record thumbs-up/down on a prompt and completion from live traffic.

    A JSON object records one (201; 200 with `duplicate: true` when its
    idempotency key was seen with the same body). A JSON array or a JSONL
    body (`Content-Type: application/x-ndjson`) records many: bad records are
    listed with their line (array position) and reason, the rest are stored.
    Bodies over `REFEREE_MAX_UPLOAD_MB` (default 512) are refused with 413.
    """
    raw = await _read_capped(request, labeler.settings.max_upload_mb)
    content_type = request.headers.get("content-type", "")
    if raw.lstrip().startswith(b"{") and not content_type.startswith(_JSONL_TYPES):
        try:
            item = FeedbackIn.model_validate_json(raw)
        except ValidationError as exc:
            # Located under "body" as FastAPI locates errors in a parsed body.
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None
        row, created = await feedback.record_one(db, item)
        if not created:
            response.status_code = status.HTTP_200_OK
        return FeedbackOut.build(row, duplicate=not created)
    # Decoded line by line: a str of the whole body (and StringIO's copy) would
    # cost four bytes a character for a body with one emoji in it.
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8")
    records = read_records(stream, "upload", FeedbackIn)
    summary = await feedback.ingest(db, records)
    response.status_code = status.HTTP_200_OK
    if summary.rejected and not (summary.accepted or summary.duplicates):
        response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
    return summary.as_dict()


async def _read_capped(request: Request, limit_mb: int) -> bytes:
    """The whole body, refused as soon as it is known to exceed ``limit_mb``.

    Checked against Content-Length first and while streaming as well, for a
    chunked body or a length that lies, so an oversized upload is never
    held in memory whole.
    """
    limit = limit_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit_mb)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit_mb)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit_mb: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"request body is over {limit_mb} MB (REFEREE_MAX_UPLOAD_MB): split the upload, "
        "or import the file with `referee feedback import FILE`, which has no limit"
    )
