"""OpenTelemetry traces: on only when the standard ``OTEL_*`` variables ask for them.

:func:`configure_tracing` installs an SDK tracer provider when
``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), unless ``OTEL_SDK_DISABLED=true``.
Without one, the OpenTelemetry API hands out non-recording spans: nothing
is exported and no trace id is stored.

The spans: one per HTTP request (FastAPI's own, see
:data:`app.api.telemetry.FASTAPI_TELEMETRY`), one per comparison and per batch run (made
here), one per generation run, and one per model call, a judge's or a
policy's (:mod:`judges.tracing`), each a child of whichever is current.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, TextIO

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode, format_trace_id
from opentelemetry.util.types import AttributeValue

from app.errors import InvalidInputError
from judges import PairOutcome
from judges.tracing import EVALUATION_EVENT, capture_content

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# The SDK (and psutil, which its resources pull in) is imported when traces are
# configured: without OTEL_* variables every command runs on the API's no-op spans.

TRACER = "referee"
DEFAULT_SERVICE = "referee"
EXPORTERS = ("otlp", "console")


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return any(env.get(name, "").strip() for name in endpoints)


def exporters(env: Mapping[str, str], console: TextIO | None = None) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``); unknown ones refused.

    ``console`` is where the console exporter writes (default stdout, the
    server's log; a CLI command's log is stderr, its stdout its output).
    """
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",")]
    chosen: list[SpanExporter] = []
    for name in filter(None, names):
        if name == "console":
            # One span a line, so the output stays JSON lines beside the logs.
            chosen.append(ConsoleSpanExporter(out=console or sys.stdout, formatter=_one_line))
        elif name == "otlp":
            chosen.append(_otlp_exporter(env))
        elif name != "none":
            raise InvalidInputError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported: "
                f"use {', '.join(EXPORTERS)} or none",
                field="OTEL_TRACES_EXPORTER",
            )
    return chosen


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + os.linesep


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or ""
    )
    if protocol.strip() not in ("", "http/protobuf"):
        raise InvalidInputError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: "
            "Referee exports OTLP over http/protobuf (a collector listens on port 4318)",
            field="OTEL_EXPORTER_OTLP_PROTOCOL",
        )
    # Imported here: it pulls in protobuf and requests, which a run without traces never needs.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # it reads the endpoint, headers and timeout variables itself


def configure_tracing(env: Mapping[str, str] | None = None, console: TextIO | None = None) -> bool:
    """Install the SDK tracer provider the environment asks for; True when traces are recorded.

    Idempotent, and a provider installed before (by a test, or by
    ``opentelemetry-instrument``) is kept.
    """
    if enabled():
        return True
    env = os.environ if env is None else env
    if not wanted(env):
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters(env, console):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # flushed and shut down at exit by the SDK
    return True


def flush(timeout_millis: int = 5_000) -> None:
    """Export the spans still buffered.

    Called as the server shuts down: uvicorn ends a server stopped by
    SIGTERM by raising the signal again, so the SDK's exit hook never runs
    and the last spans would be lost.
    """
    provider = _sdk_provider()
    if provider is not None:
        provider.force_flush(timeout_millis)


def enabled() -> bool:
    """Whether an SDK tracer provider is installed (spans are recorded)."""
    return _sdk_provider() is not None


def _sdk_provider() -> TracerProvider | None:
    """The installed SDK tracer provider, if any; the SDK is not imported to find out.

    No SDK provider can exist before its module was imported (by
    :func:`configure_tracing`, a test, or ``opentelemetry-instrument``).
    """
    sdk = sys.modules.get("opentelemetry.sdk.trace")
    if sdk is None:
        return None
    sdk_provider: type[TracerProvider] = sdk.TracerProvider
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, sdk_provider) else None


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits) if it is sampled, else None.

    Read from the span's context, not from whether it still records: the
    request's span has ended by the time its log line is written.
    """
    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return format_trace_id(context.trace_id)


def _tracer() -> trace.Tracer:
    # Looked up per span, not cached: a tracer taken before the provider is
    # installed would stay a no-op.
    return trace.get_tracer(TRACER)


@asynccontextmanager
async def comparison_span(comparison_id: uuid.UUID, judge: str) -> AsyncIterator[trace.Span]:
    """A span around judging one comparison and storing what it produced."""
    attributes = {"referee.comparison.id": str(comparison_id), "referee.judge": judge}
    with _tracer().start_as_current_span(
        "comparison", attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as exc:
            failed(span, exc)
            raise


@contextmanager
def batch_span(batch_id: uuid.UUID | None) -> Iterator[trace.Span]:
    """A span for one batch run: a trace of its own, linked to the request that started it.

    A run outlives the request (or command) it was started from, so it is
    a new root rather than that request's child.
    """
    current = trace.get_current_span().get_span_context()
    links = [Link(current)] if current.is_valid else []
    attributes = {"referee.batch.id": str(batch_id)} if batch_id is not None else {}
    with _tracer().start_as_current_span(
        "batch run",
        context=otel_context.Context(),
        links=links,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            failed(span, exc)
            raise


@contextmanager
def generation_span(generation_id: uuid.UUID) -> Iterator[trace.Span]:
    """A span for one run of sampling a generation, its policy calls under it.

    A child of whatever is current: ``POST /v1/generations`` samples within
    its request, a round within its run, ``referee generate`` at the root.
    """
    with _tracer().start_as_current_span(
        "generation run",
        attributes={"referee.generation.id": str(generation_id)},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            failed(span, exc)
            raise


def failed(span: trace.Span, exc: BaseException) -> None:
    """Mark a span failed by the exception's class (never its message: it may quote inputs)."""
    error_type = getattr(exc, "error_class", None) or type(exc).__qualname__
    span.set_attribute("error.type", str(error_type))
    span.set_status(Status(StatusCode.ERROR, str(error_type)))


def record_outcome(outcome: PairOutcome) -> None:
    """On the current (comparison) span: the verdict as a ``gen_ai.evaluation.result`` event.

    A failed comparison gets ``error.type`` instead: no verdict is made up.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return
    verdict = outcome.verdict
    if verdict is None:
        span.set_attribute("error.type", outcome.error_class or "judge_failed")
        span.set_status(Status(StatusCode.ERROR, outcome.error_class or "judge_failed"))
        return
    event: dict[str, AttributeValue] = {
        "gen_ai.evaluation.name": "pairwise_verdict",
        "gen_ai.evaluation.score.label": verdict.winner.value,
    }
    if verdict.confidence is not None:
        event["gen_ai.evaluation.score.value"] = verdict.confidence
    if verdict.position_consistent is not None:
        event["referee.position_consistent"] = verdict.position_consistent
    if capture_content():
        event["gen_ai.evaluation.explanation"] = verdict.rationale
    span.add_event(EVALUATION_EVENT, event)
