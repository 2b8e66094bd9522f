"""OpenTelemetry traces: GenAI model-call spans under the request and comparison spans.

A comparison judged over HTTP against the fake provider, with the SDK's
in-memory exporter installed as the process's tracer provider.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from opentelemetry.util._once import Once
from sqlalchemy import create_engine, select

from app.errors import InvalidInputError
from app.observability import tracing
from app.store.db import sync_url
from app.store.models import JudgeCall
from app.store.models_tracing import trace_id as trace_id_column
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider

MODEL = "claude-sonnet-4-6"
JUDGE = f"anthropic:{MODEL}"
EVALUATION = "gen_ai.evaluation.result"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def install(provider: TracerProvider | None) -> None:
    """Make ``provider`` the process's tracer provider (None: none, tracing off).

    The API lets a process set its provider once; this resets that guard as
    opentelemetry-test-utils' ``reset_trace_globals`` does.
    """
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on: every finished span lands in the returned exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        install(None)


def stored_calls(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            table = JudgeCall.__table__
            rows = connection.execute(select(table).order_by(table.c.id)).mappings().all()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def evaluations(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == EVALUATION]


def trace_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return format_trace_id(span.context.trace_id)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


class TestModelCallSpans:
    def test_a_comparison_over_http_is_traced_by_the_genai_conventions(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        database_url: str,
    ) -> None:
        """HTTP → comparison → one CLIENT span per call, its tokens, ids and evaluation event."""
        provider.configure(policy="longer")
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert response.status_code == 201, response.text
        spans = exported.get_finished_spans()

        (request,) = named(spans, "POST /v1/comparisons")
        assert request.kind is SpanKind.SERVER
        assert request.attributes is not None
        assert request.attributes["http.route"] == "/v1/comparisons"
        assert request.attributes["http.response.status_code"] == 201
        (comparison,) = named(spans, "comparison")
        assert parent_of(comparison) == span_id(request)
        calls = named(spans, f"chat {MODEL}")
        assert len(calls) == 2  # both orders
        assert {parent_of(c) for c in calls} == {span_id(comparison)}
        # One CLIENT span per model call: the provider SDK's own instrumentation is off.
        clients = [s for s in spans if s.kind is SpanKind.CLIENT]
        assert sorted(map(span_id, clients)) == sorted(map(span_id, calls))

        stored = stored_calls(database_url)
        assert len(stored) == 2
        assert {row["trace_id"] for row in stored} == {trace_hex(request)}
        by_order = {row["shown_order"]: row for row in stored}
        for call in calls:
            attributes = dict(call.attributes or {})
            row = by_order[attributes["referee.order"]]
            assert call.kind is SpanKind.CLIENT
            assert attributes["gen_ai.operation.name"] == "chat"
            assert attributes["gen_ai.provider.name"] == "anthropic"
            assert attributes["gen_ai.request.model"] == MODEL
            assert attributes["gen_ai.response.model"] == MODEL
            assert str(attributes["gen_ai.response.id"]).startswith("msg_")
            cached = row["cache_read_tokens"] + row["cache_write_tokens"]
            assert attributes["gen_ai.usage.input_tokens"] == row["input_tokens"] + cached
            assert attributes["gen_ai.usage.output_tokens"] == row["output_tokens"]
            assert attributes["gen_ai.usage.cache_read.input_tokens"] == row["cache_read_tokens"]
            assert (
                attributes["gen_ai.usage.cache_creation.input_tokens"] == row["cache_write_tokens"]
            )
            assert "error.type" not in attributes
            (event,) = evaluations(call)
            assert event["gen_ai.evaluation.name"] == "pairwise_preference"
            assert event["gen_ai.evaluation.score.label"] in {"a", "b", "tie"}
            # The judge's rationale is model text: not on spans unless content capture is on.
            assert "gen_ai.evaluation.explanation" not in event

        (verdict,) = evaluations(comparison)
        assert verdict["gen_ai.evaluation.name"] == "pairwise_verdict"
        assert verdict["gen_ai.evaluation.score.label"] == response.json()["verdict"]["winner"]

    def test_a_failed_call_has_its_error_type_and_no_evaluation(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        database_url: str,
    ) -> None:
        """An unparseable answer: error.type on the call and the comparison, no verdict event."""
        provider.configure(policy="longer", fail_next=["malformed", "malformed"])
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert response.status_code == 502
        spans = exported.get_finished_spans()
        calls = named(spans, f"chat {MODEL}")
        stored = stored_calls(database_url)
        assert {row["error_class"] for row in stored} == {"unparseable"}
        assert len(calls) == len(stored)
        for call in calls:
            assert call.status.status_code is StatusCode.ERROR
            assert (call.attributes or {})["error.type"] == "unparseable"
            assert evaluations(call) == []
            assert not call.events  # no exception event: its message could quote model output
        (comparison,) = named(spans, "comparison")
        assert (comparison.attributes or {})["error.type"] == "unparseable"
        assert evaluations(comparison) == []
        (request,) = named(spans, "POST /v1/comparisons")
        assert (request.attributes or {})["http.response.status_code"] == 502
        assert {row["trace_id"] for row in stored} == {trace_hex(request)}

    def test_explanations_only_with_content_capture(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true adds the judge's rationale."""
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        provider.configure(policy="longer")
        response = api.post("/v1/comparisons", json=pair_body(judge=JUDGE))
        assert response.status_code == 201
        (comparison,) = named(exported.get_finished_spans(), "comparison")
        (verdict,) = evaluations(comparison)
        assert verdict["gen_ai.evaluation.explanation"] == response.json()["verdict"]["rationale"]

    def test_the_callers_traceparent_is_continued(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        database_url: str,
    ) -> None:
        """A request with a W3C traceparent joins the caller's trace; its calls keep that id."""
        provider.configure(policy="longer")
        response = api.post(
            "/v1/comparisons", json=pair_body(judge=JUDGE), headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 201
        (request,) = named(exported.get_finished_spans(), "POST /v1/comparisons")
        assert parent_of(request) == int("b7ad6b7169203331", 16)
        assert format_span_id(parent_of(request) or 0) == "b7ad6b7169203331"
        assert {row["trace_id"] for row in stored_calls(database_url)} == {
            "0af7651916cd43dd8448eb211c80319c"
        }


class TestBatchRunSpans:
    def test_a_batch_run_is_a_trace_of_its_own_linked_to_its_request(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        database_url: str,
    ) -> None:
        """batch run (a root, linked to the POST) → comparison → model calls; calls keep its id."""
        provider.configure(policy="longer")
        items = [
            pair_body(prompt=f"q{n}", response_a="a longer answer", response_b="s")
            for n in range(3)
        ]
        submitted = api.post(f"/v1/batches?judge={JUDGE}", json=items)
        assert submitted.status_code == 202, submitted.text
        batch_id = submitted.json()["id"]
        deadline = time.monotonic() + 30
        # The run's span ends once the worker has let its leases go, just after "done".
        while not named(exported.get_finished_spans(), "batch run"):
            assert time.monotonic() < deadline, "the batch run did not end"
            time.sleep(0.1)
        assert api.get(f"/v1/batches/{batch_id}").json()["status"] == "done"
        spans = exported.get_finished_spans()
        (request,) = named(spans, "POST /v1/batches")
        (run,) = named(spans, "batch run")
        assert run.parent is None
        assert [link.context.span_id for link in run.links] == [span_id(request)]
        attributes = dict(run.attributes or {})
        assert attributes["referee.batch.id"] == batch_id
        assert attributes["referee.batch.labeled"] == 3
        comparisons = named(spans, "comparison")
        assert len(comparisons) == 3
        assert {parent_of(c) for c in comparisons} == {span_id(run)}
        calls = named(spans, f"chat {MODEL}")
        assert {parent_of(c) for c in calls} == {span_id(c) for c in comparisons}
        assert {row["trace_id"] for row in stored_calls(database_url)} == {trace_hex(run)}


class TestTracingOff:
    def test_nothing_is_recorded_or_stored(
        self, api: TestClient, provider: FakeProvider, database_url: str
    ) -> None:
        """No provider installed: no trace id stored, even for a caller's traceparent."""
        exporter = InMemorySpanExporter()
        unused = TracerProvider()  # built but never installed: nothing may reach it
        unused.add_span_processor(SimpleSpanProcessor(exporter))
        assert not tracing.enabled()
        provider.configure(policy="longer")
        response = api.post(
            "/v1/comparisons", json=pair_body(judge=JUDGE), headers={"traceparent": TRACEPARENT}
        )
        assert response.status_code == 201
        stored = stored_calls(database_url)
        assert len(stored) == 2
        assert {row[trace_id_column.name] for row in stored} == {None}
        assert exporter.get_finished_spans() == ()


class TestConfiguration:
    def test_the_standard_variables_turn_traces_on(self) -> None:
        """An exporter or an OTLP endpoint asks for traces; none, or the SDK disabled, does not."""
        assert not tracing.wanted({})
        assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
        assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
        assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"})
        assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
        assert not tracing.wanted(
            {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
        )

    def test_configure_installs_a_provider_only_when_asked(self) -> None:
        """Without variables nothing is installed; with an exporter, an SDK provider is."""
        try:
            assert tracing.configure_tracing({}) is False
            assert not tracing.enabled()
            assert tracing.configure_tracing({"OTEL_TRACES_EXPORTER": "console"}) is True
            assert tracing.enabled()
            assert tracing.configure_tracing({}) is True  # kept once installed
        finally:
            provider = trace.get_tracer_provider()
            if isinstance(provider, TracerProvider):
                provider.shutdown()
            install(None)

    @pytest.mark.parametrize(
        ("env", "field"),
        [
            ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
            (
                {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
        ],
    )
    def test_an_unsupported_exporter_is_a_clear_error(
        self, env: dict[str, str], field: str
    ) -> None:
        """An exporter or protocol Referee does not ship names the variable, before serving."""
        with pytest.raises(InvalidInputError) as caught:
            tracing.configure_tracing(env)
        assert field in caught.value.message
        assert not tracing.enabled()
