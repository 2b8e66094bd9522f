"""One error shape for every 4xx and 5xx: ``{"error": {"code", "message", "details"}}``.

Domain errors (app/errors.py) carry their own status and code. FastAPI's and
Starlette's own errors (validation, body parsing, unknown paths, wrong
methods) and unhandled exceptions are rendered in the same shape here, so a
client parses one thing whatever went wrong. Validation details name the
field and never echo the input back: it may be megabytes of hostile text.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.schemas import ErrorOut
from app.errors import RefereeError

logger = logging.getLogger("referee.api")

# Longest message kept from a validator: a custom validator's message may quote
# the offending value, which may be huge.
MAX_MESSAGE_CHARS = 300
# Errors listed for one request; the rest are counted.
MAX_ERRORS = 20
# A pydantic location names, for a union, the alternative it tried: "str",
# "list[MessageIn]", "function-after[check_response(), …]", "MessageIn".
_UNION_TAG = re.compile(r"^[A-Z]|[\[(]|^(str|int|float|bool|dict|list|none)$")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}

_DESCRIPTIONS = {
    400: "The body is not UTF-8 or not JSON, is nested too deeply, or names an unknown judge.",
    401: "Missing or invalid API key.",
    403: "The API key lacks the scope this route needs.",
    404: "Not found.",
    409: "Conflicts with what is stored.",
    413: "The body, or a text or metadata in it, is over its size limit.",
    422: "A field is invalid; `details.field` names the first, `details.errors` all.",
    429: "A limit that frees up with time; retry after `Retry-After` seconds.",
    502: "The judge failed; the failed calls are stored.",
    503: "The judge or the database is not available.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses=`` entries of these error statuses, all with ErrorOut.

    ``descriptions`` overrides the default text per status: ``e404="No such batch."``.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = descriptions.get(f"e{status}", _DESCRIPTIONS.get(status, ""))
        responses[status] = {"model": ErrorOut, "description": description}
    return responses


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=error_body(code, message, details), headers=headers
    )


def install(app: FastAPI) -> None:
    """Render every error the app can raise in the one shape."""
    app.add_exception_handler(RefereeError, _referee_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled_error)


async def _referee_error(_request: Request, exc: RefereeError) -> JSONResponse:
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers or None)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors: list[dict[str, Any]] = []
    for error in map(_field_error, exc.errors()):
        # A union field fails once per alternative, often with the same words.
        if (error["field"], error["message"]) not in {(e["field"], e["message"]) for e in errors}:
            errors.append(error)
    invalid_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        # The body is not JSON at all: a parse error, not a field that broke a rule.
        return _json_parse_error(invalid_json)
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    details: dict[str, Any] = {"field": first["field"], "errors": errors[:MAX_ERRORS]}
    return error_response(422, "invalid_input", message, details)


def _json_parse_error(error: Any) -> JSONResponse:
    """FastAPI's parser reports a character position; pydantic's (feedback) its own words."""
    position = error.get("loc", ())[-1] if error.get("loc") else None
    reason = (error.get("ctx") or {}).get("error") or error.get("msg") or "invalid"
    message = f"the body is not valid JSON: {_clip(str(reason))}"
    details: dict[str, Any] = {"field": "body"}
    if isinstance(position, int):
        message += f" (at character {position})"
        details["position"] = position
    return error_response(400, "invalid_json", message, details)


def _field_error(error: Any) -> dict[str, Any]:
    """Where and what, never the input itself."""
    return {
        "field": field_path(error.get("loc", ())),
        "message": _clip(str(error.get("msg", "invalid"))),
        "type": str(error.get("type", "invalid")),
    }


def field_path(loc: Any) -> str:
    """``("body", "prompt", 0, "role")`` → ``body.prompt[0].role``, union alternatives left out."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _UNION_TAG.search(str(part)):
            path += f".{part}" if path else str(part)
    return path or "body"


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 1] + "…"


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code, message = _CODES.get(status) or _code_of(status), str(exc.detail)
    cause = exc.__cause__
    if status == 400 and isinstance(cause, UnicodeDecodeError):
        code = "invalid_encoding"
        message = f"the body is not valid UTF-8 (byte {cause.start})"
    elif status == 400 and isinstance(cause, RecursionError):
        code, message = "invalid_json", "the JSON body is nested too deeply"
    elif status == 400 and isinstance(cause, ValueError):
        # json refuses some JSON it reads, e.g. an integer of over 4,300 digits.
        reason = str(cause).split(";")[0]  # without Python's advice on raising the limit
        code, message = "invalid_json", f"the body could not be parsed: {_clip(reason)}"
    elif status == 400 and cause is not None:
        code, message = "invalid_body", "the body could not be parsed"
    # BodyTooLarge (app.api.limits) carries its limit and setting.
    details: dict[str, Any] = getattr(exc, "details", None) or (
        {"field": "body"} if status in (400, 413) else {}
    )
    return error_response(status, code, message, details, dict(exc.headers or {}) or None)


def _code_of(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback stays in the server's log; the client learns only that it
    # was our fault, so nothing about the code or the data leaks.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; it has been logged")
