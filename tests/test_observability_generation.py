"""Policy (generation) calls seen run, and the metric families issue 21 names (issue 21).

A policy call is a CLIENT span by the GenAI conventions and is counted in
the ``referee_generation_*`` families; a stored sample keeps its trace id; a
generation run has its span and canonical log line. Reward scoring goes
through the judge path: counted and traced as a judge call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from judges.policies.base import PlannedRequest, SamplingParams, draw_with_retries, policy_config
from judges.policies.registry import build_policy
from tests.conftest import pair_body
from tests.fake_provider import FakeProvider
from tests.test_generate import prompts_file
from tests.test_generate import run as generate
from tests.test_metrics_prometheus import (
    Samples,
    _enqueue,
    by,
    delta,
    free_port,
    rows,
    samples,
    total,
)
from tests.test_tracing import exported, named, parent_of, span_id, trace_hex

__all__ = ["exported"]  # the in-memory exporter fixture, shared with tests/test_tracing.py

OPENAI_MODEL = "gpt-4o-mini"
OPENAI = f"openai:{OPENAI_MODEL}"
ANTHROPIC = "anthropic:claude-haiku-4-5"
JUDGE = "anthropic:claude-sonnet-4-6"


async def _no_wait(_seconds: float) -> None:
    return None


def draw(spec: str, n: int, seed: int | None = 3) -> Any:
    policy = build_policy(policy_config(spec))

    async def go() -> Any:
        try:
            return await draw_with_retries(
                policy,
                "Hello there",
                PlannedRequest(0, n),
                SamplingParams(0.5, 0.9, 64),
                seed,
                sleep=_no_wait,
            )
        finally:
            await policy.aclose()

    return asyncio.run(go())


def process_samples() -> Samples:
    return samples(generate_latest(REGISTRY).decode())


class TestPolicyCallSpans:
    def test_every_attempt_is_a_genai_client_span_and_the_outcome_keeps_its_trace(
        self, provider: FakeProvider, exported: InMemorySpanExporter
    ) -> None:
        """A 500 then two samples in one request: two spans, the failure typed, the answer's
        tokens, response id and finish reasons; no prompt or text on any span."""
        provider.configure(fail_next=["500"])
        outcome = draw(OPENAI, 2)
        assert outcome.draw is not None
        assert outcome.attempts == 2
        failed, answered = named(exported.get_finished_spans(), f"chat {OPENAI_MODEL}")
        for span in (failed, answered):
            assert span.kind is SpanKind.CLIENT
            attributes = dict(span.attributes or {})
            assert attributes["gen_ai.operation.name"] == "chat"
            assert attributes["gen_ai.provider.name"] == "openai"
            assert attributes["gen_ai.request.model"] == OPENAI_MODEL
            assert attributes["gen_ai.request.choice.count"] == 2
            assert attributes["gen_ai.request.temperature"] == 0.5
            assert attributes["gen_ai.request.top_p"] == 0.9
            assert attributes["gen_ai.request.max_tokens"] == 64
            assert attributes["gen_ai.request.seed"] == 3
            text = json.dumps(attributes)
            assert "Hello there" not in text
            assert not any(c.text and c.text in text for c in outcome.draw.choices)
        assert failed.status.status_code is StatusCode.ERROR
        assert dict(failed.attributes or {})["error.type"] == "transient"
        assert answered.status.status_code is not StatusCode.ERROR
        attributes = dict(answered.attributes or {})
        assert "error.type" not in attributes
        assert attributes["gen_ai.usage.input_tokens"] == outcome.draw.usage.input_tokens > 0
        assert attributes["gen_ai.usage.output_tokens"] == outcome.draw.usage.output_tokens > 0
        assert attributes["gen_ai.response.model"] == OPENAI_MODEL
        assert str(attributes["gen_ai.response.id"])
        assert list(attributes["gen_ai.response.finish_reasons"]) == ["stop", "stop"]  # type: ignore[arg-type]
        # Each attempt keeps its own span's trace; the stored one is the last attempt's.
        assert [c.error_class for c in outcome.calls] == ["transient", None]
        assert [c.trace_id for c in outcome.calls] == [trace_hex(failed), trace_hex(answered)]
        assert outcome.trace_id == trace_hex(answered)

    def test_an_anthropic_policy_call_is_a_span_with_its_response_id(
        self, provider: FakeProvider, exported: InMemorySpanExporter
    ) -> None:
        outcome = draw(ANTHROPIC, 1)
        (span,) = named(exported.get_finished_spans(), "chat claude-haiku-4-5")
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.provider.name"] == "anthropic"
        assert str(attributes["gen_ai.response.id"]).startswith("msg")
        assert "gen_ai.request.choice.count" not in attributes  # one sample: left unset
        assert outcome.trace_id == trace_hex(span)

    def test_tracing_off_costs_no_trace_id_and_keeps_every_attempt(
        self, provider: FakeProvider
    ) -> None:
        provider.configure(fail_next=["429"], retry_after=0)
        outcome = draw(OPENAI, 1)
        assert [c.error_class for c in outcome.calls] == ["rate_limited", None]
        assert outcome.trace_id is None
        assert all(c.trace_id is None for c in outcome.calls)

    def test_a_local_model_without_a_chat_template_is_a_text_completion(
        self, tmp_path: Path, exported: InMemorySpanExporter
    ) -> None:
        """A plain-text prompt continued is named ``text_completion``, as the conventions say."""
        torch = pytest.importorskip("torch")
        pytest.importorskip("transformers")
        from tests.tiny_models import build_causal_lm

        torch.set_num_threads(1)
        folder = build_causal_lm(tmp_path / "lm")
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config.pop("chat_template", None)
        config_path.write_text(json.dumps(config))
        (folder / "chat_template.jinja").unlink(missing_ok=True)
        policy = build_policy(policy_config(f"local:{folder}", device="cpu", batch_size=1))

        async def go() -> Any:
            try:
                return await draw_with_retries(
                    policy, "Once upon", PlannedRequest(0, 2), SamplingParams(1.0, None, 4), 1
                )
            finally:
                await policy.aclose()

        outcome = asyncio.run(go())
        assert outcome.draw is not None
        (span,) = named(exported.get_finished_spans(), f"text_completion {folder}")
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.operation.name"] == "text_completion"
        assert attributes["gen_ai.provider.name"] == "local"
        assert attributes["gen_ai.usage.output_tokens"] == outcome.draw.usage.output_tokens


def request_attempts(url: str) -> int:
    """Model calls the stored samples account for: each request's attempts, once a request."""
    (row,) = rows(
        url,
        "SELECT coalesce(sum(attempts), 0) FROM (SELECT DISTINCT request_id, attempts"
        " FROM generation_samples WHERE request_id IS NOT NULL) r",
    )
    return int(str(row[0]))


class TestGenerationRuns:
    def test_a_generate_run_is_traced_counted_and_logged_as_stored(
        self,
        tmp_path: Path,
        settings: Settings,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """referee generate with a 429 retried: the run's span over its calls, each sample's
        trace id stored, referee_generation_* equal to the database, one canonical line."""
        caplog.set_level(logging.INFO, logger="referee")
        provider.configure(fail_next=["429"], retry_after=0)
        before = process_samples()
        summary = generate(settings, prompts_file(tmp_path / "p.jsonl", 3), _spec(OPENAI, 2))
        change = delta(before, process_samples())
        assert summary.status_counts == {"done": 6}

        spans = exported.get_finished_spans()
        (run,) = named(spans, "generation run")
        assert dict(run.attributes or {})["referee.generation.id"] == summary.generation_id
        assert dict(run.attributes or {})["referee.generation.sampled"] == 6
        calls = named(spans, f"chat {OPENAI_MODEL}")
        assert len(calls) == 4  # three requests, one of them tried twice
        assert {parent_of(c) for c in calls} == {span_id(run)}
        stored = rows(settings.database_url, "SELECT DISTINCT trace_id FROM generation_samples")
        assert stored == [(trace_hex(run),)]

        url = settings.database_url
        assert total(change, "referee_generation_calls_total") == request_attempts(url) == 4
        assert by(change, "referee_generation_calls_total", "outcome") == {
            "ok": 3,
            "rate_limited": 1,
        }
        assert total(change, "referee_generation_call_duration_seconds_count") == 4
        ((input_tokens, output_tokens, cost),) = rows(
            url,
            "SELECT sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM generation_samples",
        )
        assert by(change, "referee_generation_tokens_total", "kind") == {
            "input": input_tokens,
            "output": output_tokens,
        }
        assert total(change, "referee_generation_cost_usd_total") == pytest.approx(
            float(Decimal(str(cost))), abs=1e-7
        )
        assert cost
        assert float(Decimal(str(cost))) > 0
        labels = {
            dict(key[1]).get("provider")
            for key, value in change.items()
            if key[0] == "referee_generation_calls_total" and value
        }
        assert labels <= {"openai", "other"}  # a known provider, or other: never free text

        (line,) = [
            r.msg
            for r in caplog.records
            if isinstance(r.msg, dict) and r.msg.get("event") == "generation_run"
        ]
        assert line["outcome"] == "finished"
        assert (line["done"], line["sampled"], line["failed"], line["requests"]) == (6, 6, 0, 3)
        assert line["cost_usd"] == str(summary.progress.cost)
        assert "duration_ms" in line

    def test_post_generations_counts_under_named_labels_and_keeps_the_request_trace(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        database_url: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Sampled within the request: request → generation run → policy calls, one trace;
        the request's canonical line names the generation."""
        caplog.set_level(logging.INFO, logger="referee")
        before = process_samples()
        body = {"policy": OPENAI, "prompts": [{"prompt": "Name a prime."}], "n": 2}
        response = api.post("/v1/generations", json=body)
        assert response.status_code == 201, response.text
        change = delta(before, process_samples())
        assert (
            total(
                change,
                "referee_generation_calls_total",
                provider="openai",
                model=OPENAI_MODEL,
                outcome="ok",
            )
            == 1
        )
        spans = exported.get_finished_spans()
        (request,) = named(spans, "POST /v1/generations")
        (run,) = named(spans, "generation run")
        (call,) = named(spans, f"chat {OPENAI_MODEL}")
        assert parent_of(run) == span_id(request)
        assert parent_of(call) == span_id(run)
        stored = rows(database_url, "SELECT DISTINCT trace_id FROM generation_samples")
        assert stored == [(trace_hex(request),)]
        (line,) = [
            r.msg
            for r in caplog.records
            if isinstance(r.msg, dict)
            and r.msg.get("event") == "http_request"
            and r.msg.get("route") == "/v1/generations"
        ]
        assert line["generation_id"] == response.json()["id"]
        assert line["trace_id"] == trace_hex(request)


def _spec(policy: str, n: int) -> Any:
    from app.labeling.rounds.generation_jobs import GenerationSpec

    return GenerationSpec(policy, n=n, seed=1)


class TestRewards:
    def test_reward_scoring_is_counted_and_traced_as_judge_calls(
        self,
        api: TestClient,
        provider: FakeProvider,
        exported: InMemorySpanExporter,
        database_url: str,
    ) -> None:
        """POST /v1/rewards: each rating call counted in referee_judge_*, a span with its
        rubric_rating event, and the stored call keeps the span's trace id."""
        before = process_samples()
        items = [
            {"prompt": "Q?", "completion": "a careful answer"},
            {"prompt": "Q?", "completion": "another answer"},
        ]
        response = api.post("/v1/rewards", json={"scorer": {"judge": JUDGE}, "items": items})
        assert response.status_code == 200, response.text
        change = delta(before, process_samples())
        stored = rows(
            database_url, "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM judge_calls"
        )
        ((calls, input_tokens, output_tokens),) = stored
        assert calls == 2
        assert total(change, "referee_judge_calls_total", outcome="ok") == calls
        assert total(change, "referee_judge_tokens_total", kind="input") == input_tokens
        assert total(change, "referee_judge_tokens_total", kind="output") == output_tokens
        spans = named(exported.get_finished_spans(), "chat claude-sonnet-4-6")
        assert len(spans) == 2
        for span in spans:
            (event,) = [dict(e.attributes or {}) for e in span.events]
            assert event["gen_ai.evaluation.name"] == "rubric_rating"
        (request,) = named(exported.get_finished_spans(), "POST /v1/rewards")
        trace_ids = rows(database_url, "SELECT DISTINCT trace_id FROM judge_calls")
        assert trace_ids == [(trace_hex(request),)]


# Every family issue 21 names: (name as parsed, type, labels, unit suffix).
FAMILIES = [
    ("referee_judge_calls", "counter", {"provider", "model", "outcome"}),
    ("referee_judge_call_duration_seconds", "histogram", {"provider", "model"}),
    ("referee_judge_tokens", "counter", {"provider", "model", "kind"}),
    ("referee_judge_cost_usd", "counter", {"provider", "model"}),
    ("referee_verdicts", "counter", {"judge", "winner", "position_consistent"}),
    ("referee_judge_retries", "counter", {"error_class"}),
    ("referee_judge_rate_limited", "counter", {"provider", "model"}),
    ("referee_pending_pairs", "gauge", {"judge"}),
    ("referee_lease_renewals", "counter", {"kind"}),
    ("referee_lease_takeovers", "counter", {"kind"}),
    ("referee_http_requests", "counter", {"method", "route", "status"}),
    ("referee_http_request_duration_seconds", "histogram", {"method", "route"}),
    ("referee_generation_calls", "counter", {"provider", "model", "outcome"}),
    ("referee_generation_call_duration_seconds", "histogram", {"provider", "model"}),
    ("referee_generation_tokens", "counter", {"provider", "model", "kind"}),
    ("referee_generation_cost_usd", "counter", {"provider", "model"}),
]


class TestFamilies:
    def test_every_family_the_issue_names_is_served_typed_and_labelled(
        self, api: TestClient, provider: FakeProvider, settings: Settings, tmp_path: Path
    ) -> None:
        """After a comparison (a 429 retried), a generation and a pending batch: each family
        is served with its type, base unit, ``_total`` on counters, and its label names."""
        provider.configure(fail_next=["429"], retry_after=0)
        assert api.post("/v1/comparisons", json=pair_body(judge=JUDGE)).status_code == 201
        body = {"policy": OPENAI, "prompts": [{"prompt": "Name a prime."}], "n": 1}
        assert api.post("/v1/generations", json=body).status_code == 201
        source = tmp_path / "pairs.jsonl"
        source.write_text(json.dumps(pair_body(prompt="a pending question")) + "\n")
        asyncio.run(_enqueue(settings, source, "queued"))  # judged by nobody: pending
        text = api.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name, kind, labels in FAMILIES:
            family = families.get(name)
            assert family is not None, f"{name} is not served"
            assert family.type == kind, name
            if kind == "counter":
                assert f"# TYPE {name}_total counter" in text or f"# TYPE {name} counter" in text
                assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
            keys = {k for s in family.samples for k in s.labels if k != "le"}
            assert family.samples, f"{name} has no series after the run"
            assert keys == labels, name
        for name in ("referee_judge_cost_usd_total", "referee_generation_cost_usd_total"):
            assert f"\n{name}{{" in text  # base unit USD, and _total, in the sample's name


def log_lines(stderr: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A command's stderr as (log lines, console spans): every line must be JSON."""
    parsed = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    spans = [line for line in parsed if "context" in line and "name" in line]
    return [line for line in parsed if line not in spans], spans


class TestCommandLogsAndTraces:
    def test_a_worker_writes_json_lines_and_one_canonical_line_per_batch_run(
        self, settings: Settings, provider: FakeProvider, database_url: str, tmp_path: Path
    ) -> None:
        """referee worker, output piped, OTEL_TRACES_EXPORTER=console: every line JSON, one
        batch_run line naming its batch and trace, the batch run's span with its calls."""
        source = tmp_path / "pairs.jsonl"
        source.write_text(
            "".join(json.dumps(pair_body(prompt=f"worker question {i}")) + "\n" for i in range(3))
        )
        asyncio.run(_enqueue(settings, source, "logged"))
        env = {
            **os.environ,
            "REFEREE_DATABASE_URL": database_url,
            "OTEL_TRACES_EXPORTER": "console",
        }
        worker = subprocess.run(
            [sys.executable, "-m", "app.cli", "worker", "--metrics-port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert worker.returncode == 0, worker.stderr
        lines, spans = log_lines(worker.stderr)
        (run,) = [line for line in lines if line["event"] == "batch_run"]
        ((batch_id,),) = rows(database_url, "SELECT DISTINCT batch_id FROM comparisons")
        assert run["batch_ids"] == [str(uuid.UUID(str(batch_id)))]
        assert run["batches"] == 1
        assert (run["done"], run["labeled"], run["failed"]) == (3, 3, 0)
        assert all({"event", "level", "logger", "timestamp"} <= set(line) for line in lines)
        (batch_span,) = [s for s in spans if s["name"] == "batch run"]
        assert batch_span["context"]["trace_id"] == "0x" + run["trace_id"]
        assert len([s for s in spans if s["name"] == "chat claude-sonnet-4-6"]) == 6
        stored = rows(database_url, "SELECT DISTINCT trace_id FROM judge_calls")
        assert stored == [(run["trace_id"],)]
        assert "worker question" not in worker.stderr
        # The summary on stdout is the command's result, not a log line.
        assert worker.stdout.startswith("worker judged 3 pairs")

    def test_referee_generate_writes_a_generation_run_line_and_its_spans(
        self, provider: FakeProvider, database_url: str, tmp_path: Path
    ) -> None:
        """referee generate, output piped, traced to the console: the generation_run line, the
        run's span over one policy call per prompt, the samples' trace id stored."""
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        env = {
            **os.environ,
            "REFEREE_DATABASE_URL": database_url,
            "OTEL_TRACES_EXPORTER": "console",
        }
        command = [sys.executable, "-m", "app.cli", "generate", str(path), "-p", OPENAI, "-n", "2"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        # The progress bar is drawn on a terminal only; piped, stderr is log and span lines.
        lines, spans = log_lines(
            "\n".join(line for line in done.stderr.splitlines() if line.startswith("{"))
        )
        (run,) = [line for line in lines if line["event"] == "generation_run"]
        assert (run["done"], run["sampled"], run["requests"]) == (4, 4, 2)
        (run_span,) = [s for s in spans if s["name"] == "generation run"]
        assert run_span["context"]["trace_id"] == "0x" + run["trace_id"]
        calls = [s for s in spans if s["name"] == f"chat {OPENAI_MODEL}"]
        assert len(calls) == 2
        assert {c["parent_id"] for c in calls} == {run_span["context"]["span_id"]}
        assert rows(database_url, "SELECT DISTINCT trace_id FROM generation_samples") == [
            (run["trace_id"],)
        ]
        assert "Question number" not in done.stderr

    def test_cache_tokens_are_counted_by_kind_for_judge_and_policy_calls(self) -> None:
        """Cache reads and writes (Anthropic's prompt cache) are their own token kinds."""
        from app.observability import metrics
        from judges.policies.base import PolicyCall, RequestOutcome
        from judges.types import Usage

        before = process_samples()
        row = {
            "provider": "anthropic",
            "model": "claude-sonnet-4-6",
            "error_class": None,
            "latency_ms": 120.0,
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_tokens": 700,
            "cache_write_tokens": 50,
            "cost_usd": Decimal("0.001"),
        }
        metrics.count_call(row)
        usage = Usage(input_tokens=5, output_tokens=2, cache_read_tokens=40, cache_write_tokens=9)
        outcome = RequestOutcome(
            PlannedRequest(0, 1), None, None, 1, 80.0, usage, calls=(PolicyCall(None, 80.0, usage),)
        )
        metrics.count_generation(
            policy_config(ANTHROPIC), outcome, Decimal("0.002"), lambda _usage: None
        )
        change = delta(before, process_samples())
        assert by(change, "referee_judge_tokens_total", "kind") == {
            "input": 10,
            "output": 3,
            "cache_read": 700,
            "cache_write": 50,
        }
        assert by(change, "referee_generation_tokens_total", "kind") == {
            "input": 5,
            "output": 2,
            "cache_read": 40,
            "cache_write": 9,
        }
        assert total(change, "referee_generation_cost_usd_total") == pytest.approx(0.002)


class TestGenerateMetricsPort:
    def test_referee_generate_serves_its_policy_calls_under_the_policy_name(
        self, provider: FakeProvider, database_url: str, tmp_path: Path
    ) -> None:
        """--metrics-port: while it samples, the calls so far, the operator's policy model
        named (a self-hosted checkpoint would be in no price table)."""
        path = prompts_file(tmp_path / "prompts.jsonl", 3)
        provider.configure(latency_ms=1500)
        port = free_port()
        command = [
            *(sys.executable, "-m", "app.cli", "generate", str(path)),
            *("-p", "openai:my-sft-checkpoint", "-n", "2", "--concurrency", "1"),
            *("--metrics-port", str(port)),
        ]
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        running = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        seen: Samples = {}
        try:
            deadline = time.monotonic() + 60
            while not total(seen, "referee_generation_calls_total"):
                assert time.monotonic() < deadline, "no policy call was counted"
                try:
                    seen = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
                except httpx.TransportError:
                    time.sleep(0.1)
        finally:
            _out, err = running.communicate(timeout=120)
        assert running.returncode == 0, err
        calls = total(
            seen, "referee_generation_calls_total", provider="openai", model="my-sft-checkpoint"
        )
        assert calls >= 1
        assert total(seen, "referee_generation_calls_total") == calls  # nothing under "other"
        assert total(seen, "referee_generation_unpriced_calls_total") == calls

    def test_referee_round_run_serves_its_sampling_under_the_policy_name(
        self, provider: FakeProvider, database_url: str, tmp_path: Path
    ) -> None:
        """round run --metrics-port: the round's policy calls counted, the policy model named."""
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        provider.configure(latency_ms=1500)
        port = free_port()
        command = [
            *(sys.executable, "-m", "app.cli", "round", "run", "r1", "--prompts", str(path)),
            *("--policy", "openai:round-policy", "--judge", OPENAI, "-n", "2"),
            *("--concurrency", "1", "--metrics-port", str(port)),
        ]
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        running = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        seen: Samples = {}
        try:
            deadline = time.monotonic() + 60
            while not total(seen, "referee_generation_calls_total"):
                assert time.monotonic() < deadline, "no policy call was counted"
                try:
                    seen = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
                except httpx.TransportError:
                    time.sleep(0.1)
        finally:
            _out, err = running.communicate(timeout=120)
        assert running.returncode == 0, err
        calls = total(seen, "referee_generation_calls_total", model="round-policy", outcome="ok")
        assert calls >= 1
        assert total(seen, "referee_generation_calls_total") == calls
