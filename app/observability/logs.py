"""Structured logs with structlog: JSON lines off a terminal, readable lines on one.

Every log record, ours and uvicorn's (start-up, errors, access), goes through
stdlib logging to one handler whose :class:`structlog.stdlib.ProcessorFormatter`
renders it: :func:`logging_config` is the ``dictConfig`` for it (``referee
serve`` hands it to uvicorn; the CLI applies it with :func:`configure_logging`).

One canonical line per HTTP request (:class:`RequestLogMiddleware`), per
batch run (:func:`observed_batch_run`) and per generation run
(:func:`observed_generation_run`), with the request, batch, comparison and
generation ids and the trace id. Prompts, responses and keys are never
logged on purpose; :func:`redact` is the safety net, and tracebacks are
plain (no local variables, which could hold a request body).
"""

from __future__ import annotations

import functools
import logging
import logging.config
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, Literal, Protocol, TextIO, TypeVar

import structlog
from structlog.contextvars import bound_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

from app.observability import tracing

REDACTED = "[redacted]"
# Fields that carry judged text, model output or credentials, whatever logs them.
SENSITIVE_KEYS = frozenset(
    {
        "prompt",
        "response",
        "response_a",
        "response_b",
        "completion",
        "reference",
        "criteria",
        "messages",
        "content",
        "raw_output",
        "rationale",
        "explanation",
        "body",
        "api_key",
        "secret",
        "password",
        "authorization",
        "cookie",
        "token",
    }
)
# An API key (ref_ + 43 URL-safe characters) or a credential in a header value.
_SECRETS = re.compile(r"ref_[A-Za-z0-9_-]{16,}|(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}")
_MAX_DEPTH = 6


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _SECRETS.sub(REDACTED, value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Blank sensitive fields (at any depth) and key-shaped strings anywhere, tracebacks too."""
    scrubbed: EventDict = _scrub(dict(event_dict))
    return scrubbed


def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The trace id of the current recording span, if any."""
    trace_id = tracing.current_trace_id()
    if trace_id is not None:
        event_dict.setdefault("trace_id", trace_id)
    return event_dict


def _shared() -> list[Processor]:
    """What every record gets, ours or a foreign (stdlib) one."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_context,
    ]


def configure_structlog() -> None:
    """Send structlog's loggers through stdlib logging (rendered by :func:`formatter`)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *_shared(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _log() -> structlog.stdlib.BoundLogger:
    """Our logger, through stdlib logging even where nothing configured structlog."""
    if not structlog.is_configured():
        configure_structlog()
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger("referee")
    return logger


def formatter(json: bool) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of every line: JSON, or a console rendering for a terminal.

    Named by :func:`logging_config`, so it also runs in each process
    uvicorn starts: it configures structlog there too.
    """
    configure_structlog()
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Plain text: structlog's rich and dict tracebacks would show local
            # variables, and a request's body is one.
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )


_PER_REQUEST_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "anthropic", "aiohttp.access")


def logging_config(
    stream: Literal["stdout", "stderr"], *, json: bool, level: str = "INFO"
) -> dict[str, Any]:
    """The ``dictConfig`` sending every logger, uvicorn's included, to one structured handler."""
    through_root = {"handlers": [], "propagate": True, "level": level}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": f"{__name__}.formatter", "json": json}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": f"ext://sys.{stream}",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            **{name: dict(through_root) for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
            # Its schema check at start-up says "Context impl SQLiteImpl." and the like.
            "alembic": {"level": "WARNING"},
            # The provider SDKs and their HTTP clients log every request at INFO: a line
            # per model call is CPU in the judging loop, noise under a progress bar, and a
            # process blocks once a piped stderr nobody reads is full. Their warnings stay.
            **{name: {"level": "WARNING"} for name in _PER_REQUEST_LOGGERS},
        },
    }


def configure_logging(stream: TextIO, name: Literal["stdout", "stderr"]) -> None:
    """Structured logs on ``stream`` (named ``name``): JSON unless it is a terminal."""
    logging.config.dictConfig(logging_config(name, json=not _is_terminal(stream)))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


# The current request's canonical-line fields that code deeper down adds
# (the key's name, a comparison id). A dict, so that a context copied into
# a task still writes to the request's.
_request_fields: ContextVar[dict[str, Any] | None] = ContextVar(
    "referee_request_fields", default=None
)


def note(**fields: Any) -> None:
    """Add fields to the current HTTP request's canonical line (no request: nothing)."""
    current = _request_fields.get()
    if current is not None:
        current.update(fields)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestLogMiddleware:
    """One canonical log line per HTTP request (inside FastAPI's span, so with its trace id).

    The line: method, route template (never the raw path, which may hold
    ids of any length), status, duration, request id, the key's name and
    the comparison id where they were noted, and the trace id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        fields: dict[str, Any] = {}
        token = _request_fields.set(fields)
        status = 500  # what the client gets if the app raises before answering

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        with bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, record_status)
            except BaseException as exc:
                fields["error"] = type(exc).__qualname__
                raise
            finally:
                _request_fields.reset(token)
                method = str(scope.get("method", ""))
                route = getattr(scope.get("route"), "path", None)
                _log_request(method, route, status, started, fields)


def _log_request(
    method: str, route: str | None, status: int, started: float, fields: dict[str, Any]
) -> None:
    # Written in line, as uvicorn writes its access lines: a thread hop per request costs more.
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    _log().log(
        level,
        "http_request",
        method=method,
        route=route,
        status=status,
        duration_ms=_since(started),
        **fields,
    )


@asynccontextmanager
async def observed_comparison(comparison_id: uuid.UUID, judge: str) -> AsyncIterator[None]:
    """Judging one comparison: its span, and its id on the request's line and every log line."""
    note(comparison_id=str(comparison_id))
    with bound_contextvars(comparison_id=str(comparison_id)):
        async with tracing.comparison_span(comparison_id, judge):
            yield


class _Run(Protocol):
    @property
    def batch_id(self) -> uuid.UUID | None: ...


MAX_LOGGED_BATCHES = 100
"""Batch ids a run's line names at most (a worker over every batch may touch many)."""


def _worked_batches(runner: object) -> dict[str, Any]:
    """For a run over every batch: the batches it worked on (ids, at most 100, and how many)."""
    worked = getattr(runner, "batch_ids", None)
    if getattr(runner, "batch_id", None) is not None or not worked:
        return {}
    ids = sorted(str(batch_id) for batch_id in worked)
    return {"batch_ids": ids[:MAX_LOGGED_BATCHES], "batches": len(ids)}


class _Progress(Protocol):
    done: int
    labeled: int
    failed: int
    discarded: int
    cost: Decimal
    failures: dict[str, int]
    stop_reason: str | None


RunT = TypeVar("RunT", bound=_Run)
ProgressT = TypeVar("ProgressT", bound=_Progress)


def observed_batch_run(
    run: Callable[[RunT], Coroutine[Any, Any, ProgressT]],
) -> Callable[[RunT], Coroutine[Any, Any, ProgressT]]:
    """Decorate a runner's ``run``: a span for the batch run, and its canonical line at the end."""

    @functools.wraps(run)
    async def observed(runner: RunT) -> ProgressT:
        batch_id = str(runner.batch_id) if runner.batch_id is not None else None
        started = time.perf_counter()
        with bound_contextvars(batch_id=batch_id), tracing.batch_span(runner.batch_id) as span:
            return await _logged_run(
                "batch_run",
                run(runner),
                span,
                "referee.batch",
                started,
                lambda p: {
                    "done": p.done,
                    "labeled": p.labeled,
                    "failed": p.failed,
                    "discarded": p.discarded,
                },
                lambda p: _worked_batches(runner),
            )

    return observed


class _Generation(Protocol):
    generation_id: uuid.UUID


class _GenerationProgress(Protocol):
    done: int
    sampled: int
    failed: int
    discarded: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    failures: dict[str, int]
    stop_reason: str | None


GenT = TypeVar("GenT", bound=_Generation)
GenProgressT = TypeVar("GenProgressT", bound=_GenerationProgress)


def observed_generation_run(
    run: Callable[[GenT], Coroutine[Any, Any, GenProgressT]],
) -> Callable[[GenT], Coroutine[Any, Any, GenProgressT]]:
    """Decorate a generator's ``run``: a span for the run, and its canonical line at the end."""

    @functools.wraps(run)
    async def observed(runner: GenT) -> GenProgressT:
        generation_id = str(runner.generation_id)
        note(generation_id=generation_id)  # on the line of the request that runs it, if any
        started = time.perf_counter()
        with (
            bound_contextvars(generation_id=generation_id),
            tracing.generation_span(runner.generation_id) as span,
        ):
            return await _logged_run(
                "generation_run",
                run(runner),
                span,
                "referee.generation",
                started,
                lambda p: {
                    "done": p.done,
                    "sampled": p.sampled,
                    "failed": p.failed,
                    "discarded": p.discarded,
                    "requests": p.requests,
                },
                lambda p: {"input_tokens": p.input_tokens, "output_tokens": p.output_tokens},
            )

    return observed


_P = TypeVar("_P", bound="_RunProgress")


class _RunProgress(Protocol):
    cost: Decimal
    failures: dict[str, int]
    stop_reason: str | None


async def _logged_run(
    event: str,
    running: Coroutine[Any, Any, _P],
    span: Any,
    prefix: str,
    started: float,
    counts_of: Callable[[_P], dict[str, int]],
    extra_of: Callable[[_P], dict[str, Any]],
) -> _P:
    """Await a run; its counts on ``span`` and one canonical ``event`` line (or its error)."""
    try:
        progress = await running
    except BaseException as exc:
        _log().error(
            event, outcome="error", error=type(exc).__qualname__, duration_ms=_since(started)
        )
        raise
    counts = counts_of(progress)
    span.set_attributes({f"{prefix}.{k}": v for k, v in counts.items()})
    _log().info(
        event,
        outcome="stopped" if progress.stop_reason else "finished",
        stop_reason=progress.stop_reason,
        **counts,
        **extra_of(progress),
        failures=progress.failures,
        cost_usd=str(progress.cost),
        duration_ms=_since(started),
    )
    return progress


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
