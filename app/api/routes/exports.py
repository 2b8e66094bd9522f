"""/v1/exports/{kind}: a DPO, KTO or SFT dataset streamed as JSONL."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.schemas import ErrorOut
from app.export.options import ExportOptions, Filters, Kind, Shape, Source
from app.export.run import stream_jsonl

router = APIRouter(prefix="/v1/exports", tags=["exports"])


@router.get(
    "/{kind}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "One row per line."},
        404: {"model": ErrorOut, "description": "No rows match (unless allow_empty)."},
        422: {"model": ErrorOut, "description": "An unknown judge or batch, a bad filter value."},
    },
)
async def export_rows(
    request: Request,
    kind: Annotated[Kind, Path(description="dpo, kto or sft.")],
    shape: Annotated[Shape, Query()] = Shape.CONVERSATIONAL,
    judge: Annotated[list[str] | None, Query(description="Only these judges.")] = None,
    batch: Annotated[
        list[str] | None, Query(description="Only these batches (name or id).")
    ] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    consistent_only: Annotated[bool, Query()] = False,
    max_length_ratio: Annotated[float | None, Query(ge=1)] = None,
    max_disagreement: Annotated[
        float | None,
        Query(ge=0, le=1, description="Jury verdicts whose members disagree at most this much."),
    ] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    source: Annotated[list[Source] | None, Query(description="KTO/SFT sources.")] = None,
    loser_min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.75,
    provenance: Annotated[bool, Query()] = False,
    deduplicate: Annotated[bool, Query()] = True,
    allow_empty: Annotated[bool, Query()] = False,
) -> StreamingResponse:
    """Stream the rows `referee export` would write, one JSON object per line.

    Rows are read from the database as they are sent: memory stays flat
    however large the dataset. Splits and the dataset card are the CLI's.
    """
    options = ExportOptions(
        kind=kind,
        shape=shape,
        filters=Filters(
            judges=tuple(judge or ()),
            batches=tuple(batch or ()),
            min_confidence=min_confidence,
            consistent_only=consistent_only,
            max_length_ratio=max_length_ratio,
            max_disagreement=max_disagreement,
            since=since,
            until=until,
        ),
        sources=tuple(source or ()),
        loser_min_confidence=loser_min_confidence,
        provenance=provenance,
        deduplicate=deduplicate,
    )
    url = request.app.state.db.raw_url
    # The reads are synchronous (fast, chunked); the first row is read here in
    # a thread so errors get a status, then Starlette iterates in threads too.
    lines = await run_in_threadpool(stream_jsonl, url, options, allow_empty=allow_empty)
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{kind.value}.jsonl"'},
    )
