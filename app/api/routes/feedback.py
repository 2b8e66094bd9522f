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
from app.api.errors import error_responses
from app.api.limits import MB, capped_records, check_feedback, check_utf8
from app.errors import BodyTooLargeError, InvalidInputError
from app.labeling import feedback
from app.labeling.feedback import FeedbackIn
from app.labeling.jsonl import read_records
from app.labeling.text_rules import validate_json
from app.store.models import Feedback

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

_JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
# Rejected lines listed in a 422's details when none was stored; the count says how many.
MAX_REJECTED_LISTED = 100


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
        **error_responses(
            400,
            409,
            413,
            422,
            e409="The idempotency key was used for another body.",
            e413="The body is over REFEREE_MAX_UPLOAD_MB (a single record: REFEREE_MAX_BODY_MB),"
            " or a text or metadata is over its limit.",
            e422="A field is invalid, the body holds no record, or every record was rejected"
            " (`details.rejected`).",
        ),
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
    # BodyLimitMiddleware has bounded the body by REFEREE_MAX_UPLOAD_MB already.
    raw = await request.body()
    # Refused whole before anything is parsed, so a bad byte half-way through an
    # upload never leaves half of it stored.
    check_utf8(raw)
    settings = labeler.settings
    content_type = request.headers.get("content-type", "")
    if raw.lstrip().startswith(b"{") and not content_type.startswith(_JSONL_TYPES):
        if len(raw) > settings.max_body_mb * MB:
            raise BodyTooLargeError(
                f"a single feedback record is over {settings.max_body_mb} MB (REFEREE_MAX_BODY_MB)",
                field="body",
            )
        try:
            item = validate_json(FeedbackIn, raw)
        except ValidationError as exc:
            # Located under "body" as FastAPI locates errors in a parsed body.
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None
        check_feedback(item.prompt, item.completion, item.metadata, settings)
        row, created = await feedback.record_one(db, item)
        if not created:
            response.status_code = status.HTTP_200_OK
        return FeedbackOut.build(row, duplicate=not created)
    # Decoded line by line: a str of the whole body (and StringIO's copy) would
    # cost four bytes a character for a body with one emoji in it.
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8")
    records = capped_records(
        read_records(stream, "upload", FeedbackIn),
        lambda r: check_feedback(r.prompt, r.completion, r.metadata, settings),
    )
    summary = await feedback.ingest(db, records)
    if not (summary.accepted or summary.duplicates):
        raise _nothing_stored(summary.rejected)
    response.status_code = status.HTTP_200_OK
    return summary.as_dict()


def _nothing_stored(rejected: list[dict[str, Any]]) -> InvalidInputError:
    if not rejected:
        return InvalidInputError(
            "the body holds no feedback record: send a JSON object, a JSON array or JSONL lines",
            field="body",
        )
    first = rejected[0]
    return InvalidInputError(
        f"every record was rejected; the first, line {first['line']}: {first['reason']}",
        field="body",
        rejected=rejected[:MAX_REJECTED_LISTED],
        rejected_count=len(rejected),
    )
