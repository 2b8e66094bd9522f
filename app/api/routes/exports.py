"""/v1/exports/{kind}: a DPO, KTO or SFT dataset streamed as JSONL.

Exports are the one route whose cost the client controls by how it reads:
a slot and two pooled connections are held until the last byte is taken.
So the number streaming at once is capped (429 beyond it, see
app/export/streams.py) and a client that takes nothing for the idle
timeout is cut off.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Send

from app.api.errors import error_responses
from app.export.options import ExportOptions, Filters, Kind, Shape, Source
from app.export.run import ExportLines
from app.export.streams import ExportStreams
from app.labeling.text_rules import BatchName, CleanStr, JudgeSpec, UtcDatetime

log = logging.getLogger("referee")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The server's one export engine, bounded by the concurrency cap.

    A router's lifespan runs inside the app's own, so the labeler (and
    its settings) is already built.
    """
    settings = app.state.labeler.settings
    streams = ExportStreams.start(
        settings.database_url,
        max_concurrent=settings.max_concurrent_exports,
        idle_timeout_s=settings.export_idle_timeout_s,
    )
    app.state.exports = streams
    try:
        yield
    finally:
        streams.close()


router = APIRouter(prefix="/v1/exports", tags=["exports"], lifespan=_lifespan)


class ExportResponse(StreamingResponse):
    """Streams an export's blocks; gives up on a client that takes none for ``idle_timeout_s``.

    A client that stops reading does not fail a send: the server's buffers
    fill and the send waits, forever. Each send therefore runs under the
    idle timeout; past it the response ends unfinished (the server closes
    the connection, and a chunked body without its last chunk tells the
    client the export is incomplete). Whatever ends the stream (the end,
    a timeout, a disconnect), the export is closed, which returns its
    connections and frees its slot.
    """

    def __init__(self, lines: ExportLines, *, idle_timeout_s: float, filename: str) -> None:
        super().__init__(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
        # Starlette's own iteration of a sync iterator never closes it; ours does.
        self._lines = lines
        self._idle_timeout_s = idle_timeout_s

    async def stream_response(self, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            if not await self._send(send, {**start, "headers": self.raw_headers}):
                return
            while (block := await anyio.to_thread.run_sync(next, self._lines, None)) is not None:
                body = {"type": "http.response.body", "body": block, "more_body": True}
                if not await self._send(send, body):
                    return
            await self._send(send, {"type": "http.response.body", "body": b""})
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._lines.close)

    async def _send(self, send: Send, message: Message) -> bool:
        """Send within the idle timeout; False when the client took too long."""
        with anyio.move_on_after(self._idle_timeout_s):
            await send(message)
            return True
        log.warning(
            "export cut off: the client took no data for %s s (REFEREE_EXPORT_IDLE_TIMEOUT_S)",
            self._idle_timeout_s,
        )
        return False


@router.get(
    "/{kind}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "One row per line."},
        **error_responses(
            404,
            422,
            429,
            e404="No rows match (unless allow_empty).",
            e422="An unknown judge or batch, a bad filter value.",
            e429="As many exports as the server streams at once are running; see Retry-After.",
        ),
    },
)
async def export_rows(
    request: Request,
    kind: Annotated[Kind, Path(description="dpo, kto or sft.")],
    shape: Annotated[Shape, Query()] = Shape.CONVERSATIONAL,
    judge: Annotated[list[JudgeSpec] | None, Query(description="Only these judges.")] = None,
    batch: Annotated[
        list[BatchName] | None, Query(description="Only these batches (name or id).")
    ] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    consistent_only: Annotated[bool, Query()] = False,
    max_length_ratio: Annotated[float | None, Query(ge=1, allow_inf_nan=False)] = None,
    max_disagreement: Annotated[
        float | None,
        Query(ge=0, le=1, description="Jury verdicts whose members disagree at most this much."),
    ] = None,
    since: Annotated[UtcDatetime | None, Query()] = None,
    until: Annotated[UtcDatetime | None, Query()] = None,
    source: Annotated[list[Source] | None, Query(description="KTO/SFT sources.")] = None,
    run: Annotated[
        CleanStr | None,
        Query(
            max_length=256,
            description="KTO/SFT: the rewards stored for this training run (metadata.run of"
            " POST /v1/rewards) instead of labels; no source or label filter with it.",
        ),
    ] = None,
    loser_min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.75,
    provenance: Annotated[bool, Query()] = False,
    deduplicate: Annotated[bool, Query()] = True,
    allow_empty: Annotated[bool, Query()] = False,
) -> StreamingResponse:
    """Stream the rows `referee export` would write, one JSON object per line.

    Rows are read from the database as they are sent: memory stays flat
    however large the dataset. Splits and the dataset card are the CLI's.
    At most REFEREE_MAX_CONCURRENT_EXPORTS stream at once (429 beyond);
    a client that reads nothing for REFEREE_EXPORT_IDLE_TIMEOUT_S is cut off.
    """
    streams: ExportStreams = request.app.state.exports
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
        run=run,
    )
    slot = streams.claim()
    try:
        # The reads are synchronous (fast, chunked); the first row is read here
        # in a thread so errors get a status, then the response reads in threads.
        lines = await run_in_threadpool(streams.open, options, slot, allow_empty=allow_empty)
    except BaseException:
        slot.release()
        raise
    return ExportResponse(
        lines, idle_timeout_s=streams.idle_timeout_s, filename=f"{kind.value}.jsonl"
    )
