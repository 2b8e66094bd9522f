"""Size limits on what a request may carry, checked before anything is parsed or paid for.

``BodyLimitMiddleware`` bounds every request body while it is read, ahead of
routing, authentication and JSON parsing: a declared Content-Length over the
limit is refused before one byte is read, and a chunked body (or one whose
length lies) as soon as the count passes it. Bulk upload routes get
REFEREE_MAX_UPLOAD_MB, every other request REFEREE_MAX_BODY_MB.

The ``check_*`` functions cap single fields of a parsed body (metadata,
rubric text, feedback texts) from the settings; the routes call them before
the use case runs, so an oversized field never reaches a judge or the store.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response
from app.errors import BadRequestError, InvalidInputError, RefereeError, TextTooLargeError
from app.labeling import limits
from app.labeling.inputs import PromptIn, ResponseIn, check_text_sizes, to_text
from app.labeling.jsonl import LineError, Parsed
from app.settings import Settings

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """How many bytes a request body may have, and what to tell the client beyond that."""

    max_bytes: int
    setting: str
    hint: str = ""

    def message(self) -> str:
        text = f"request body is over {self.max_bytes // MB} MB ({self.setting})"
        return f"{text}: {self.hint}" if self.hint else text

    def details(self) -> dict[str, Any]:
        return {"field": "body", "limit_bytes": self.max_bytes, "setting": self.setting}


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` once a body passes its limit.

    An HTTPException, so FastAPI's body reader passes it through untouched (it
    turns any other exception into a 400) and the one error handler renders it.
    """

    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(status_code=413, detail=limit.message())
        self.details = limit.details()


def body_limits(settings: Settings) -> tuple[BodyLimit, dict[tuple[str, str], BodyLimit]]:
    """The default limit, and the larger one of each bulk upload route."""
    upload = settings.max_upload_mb * MB
    return BodyLimit(settings.max_body_mb * MB, "REFEREE_MAX_BODY_MB"), {
        ("POST", "/v1/batches"): BodyLimit(
            upload,
            "REFEREE_MAX_UPLOAD_MB",
            "split the upload, or label the file with `referee label FILE`, which has no limit",
        ),
        ("POST", "/v1/feedback"): BodyLimit(
            upload,
            "REFEREE_MAX_UPLOAD_MB",
            "split the upload, or import the file with "
            "`referee feedback import FILE`, which has no limit",
        ),
    }


class BodyLimitMiddleware:
    """Pure ASGI: counts the bytes of ``http.request`` messages as the app reads them."""

    def __init__(
        self, app: ASGIApp, *, default: BodyLimit, routes: dict[tuple[str, str], BodyLimit]
    ) -> None:
        self.app = app
        self.default = default
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"]).rstrip("/") or "/"
        limit = self.routes.get((str(scope["method"]), path), self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit.max_bytes:
            await _refuse(limit, scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            # Reached here only when no handler rendered it (read outside a route).
            if started:
                raise
            await _refuse(limit, scope, receive, send)


async def _refuse(limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(413, "body_too_large", limit.message(), limit.details())
    await response(scope, receive, send)


class InvalidEncodingError(BadRequestError):
    code = "invalid_encoding"


def check_utf8(raw: bytes) -> None:
    """400 unless ``raw`` is UTF-8, decoded a slice at a time so a large upload is not copied."""
    decoder, start = codecs.getincrementaldecoder("utf-8")(), 0
    try:
        for start in range(0, len(raw), MB):
            decoder.decode(raw[start : start + MB])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InvalidEncodingError(
            f"the body is not valid UTF-8 (near byte {start + exc.start})", field="body"
        ) from None


def text_body(raw: bytes) -> str:
    """A raw (JSONL) body as text: 400 if it is not UTF-8, 422 if it holds nothing."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEncodingError(
            f"the body is not valid UTF-8 (byte {exc.start})", field="body"
        ) from None
    if not text.strip():
        raise InvalidInputError("the body is empty: send JSONL lines or a JSON array", field="body")
    return text


def check_metadata(metadata: dict[str, Any] | None, settings: Settings) -> None:
    """Refuse metadata over REFEREE_MAX_METADATA_KB of compact JSON (413)."""
    limits.check_metadata(metadata, settings.max_metadata_kb)


def check_rubric_text(text: str | None, settings: Settings) -> None:
    if text is not None and len(text) > settings.max_rubric_chars:
        raise TextTooLargeError(
            f"rubric_text has {len(text)} characters; the limit is {settings.max_rubric_chars} "
            "(REFEREE_MAX_RUBRIC_CHARS)",
            field="rubric_text",
        )


def check_feedback(
    prompt: PromptIn,
    completion: ResponseIn,
    metadata: dict[str, Any] | None,
    settings: Settings,
) -> None:
    """One feedback record's texts (REFEREE_MAX_TEXT_CHARS) and metadata."""
    texts = {"prompt": to_text(prompt), "completion": to_text(completion)}
    check_text_sizes(texts, settings.max_text_chars)
    check_metadata(metadata, settings)


RecordT = TypeVar("RecordT", bound=BaseModel)


def capped_records(
    records: Iterable[Parsed[RecordT] | LineError],
    check: Callable[[RecordT], None],
) -> Iterator[Parsed[RecordT] | LineError]:
    """Bulk records with those over a cap turned into rejected lines naming the field."""
    for item in records:
        if isinstance(item, LineError):
            yield item
            continue
        try:
            check(item.record)
        except RefereeError as exc:
            yield LineError(source="upload", line=item.line, reason=exc.message, text="")
            continue
        yield item
