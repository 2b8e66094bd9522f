"""Provider-batch mode: the providers' batch APIs through the real SDKs, prompt caching, costs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import DateTime, bindparam, create_engine, text
from typer.testing import CliRunner

from app.cli import cli
from app.labeling.batch import Progress
from app.labeling.pricing import call_cost
from app.labeling.provider_batch import ProviderBatchOptions, ProviderBatchRun
from app.labeling.run import LabelOptions, label_stream
from app.settings import Settings
from app.store.db import sync_url
from judges import JudgeRegistry, Order, Pair, config_from_spec, show
from judges import templates as prompt_templates
from judges.backends._caching import min_cacheable_tokens
from judges.base import RawAnswer
from judges.provider_batch import batch_api_for, pair_requests
from judges.types import Usage
from tests.fake_provider import FakeProvider

ANTHROPIC = "anthropic:claude-sonnet-4-5"
OPENAI = "openai:gpt-4o-mini"
BATCH_CREATES = {"/v1/messages/batches", "/v1/batches"}


def write_pairs(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            long, short = f"a long and careful answer {i} " * 3, f"short {i}"
            a, b = (long, short) if i % 2 else (short, long)
            line = {"id": f"p{i}", "prompt": f"question {i}", "response_a": a, "response_b": b}
            out.write(json.dumps(line) + "\n")
    return path


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        result = [tuple(r) for r in connection.execute(text(sql)).fetchall()]
    engine.dispose()
    return result


def creates(provider: FakeProvider) -> int:
    return sum(1 for r in provider.requests() if r["path"] in BATCH_CREATES)


@contextmanager
def no_progress(_total: int) -> Iterator[Callable[[Progress], None]]:
    yield lambda _p: None


def label(settings: Settings, path: Path, judge: str, **batch: Any) -> Any:
    options = LabelOptions(
        judge=judge,
        origin=str(path),
        provider_batch=ProviderBatchOptions(poll_seconds=0.05, **batch),
    )
    with path.open(encoding="utf-8") as stream:
        return asyncio.run(
            label_stream(settings, stream, str(path), options, no_progress, lambda _e: None)
        )


VERDICT_ROWS = (
    "SELECT c.external_id, v.winner FROM comparisons c JOIN verdicts v ON v.comparison_id = c.id "
    "ORDER BY c.external_id"
)


class TestRequests:
    """A batch request is byte for byte what the live call sends."""

    @pytest.mark.parametrize("spec", [ANTHROPIC, OPENAI])
    def test_batch_body_equals_the_live_body(self, provider: FakeProvider, spec: str) -> None:
        """The live request the fake received and the batch request's body are the same JSON."""
        judge = JudgeRegistry.from_entry_points().judge(config_from_spec(spec))
        pair = Pair("What is 2+2?", "4", "5")
        asyncio.run(judge.answer(show(pair, Order.BA)))
        live = provider.requests()[-1]["body"]
        (ab, ba) = pair_requests(batch_api_for(judge), "item", pair)
        assert (ab.custom_id, ba.custom_id) == ("item-ab", "item-ba")
        assert json.loads(json.dumps(ba.body)) == live

    def test_a_submission_never_splits_a_pair(
        self, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With room for three requests, pairs of two go one per submission."""
        from judges.provider_batch import submissions

        judge = JudgeRegistry.from_entry_points().judge(config_from_spec(OPENAI))
        api = batch_api_for(judge)
        monkeypatch.setattr(type(api), "max_requests", 3)
        items = [(f"i{n}", Pair(f"q{n}", "x", "y")) for n in range(3)]
        chunks = list(submissions(items, api))
        assert [ids for ids, _ in chunks] == [["i0"], ["i1"], ["i2"]]
        assert all(len(requests) == 2 for _, requests in chunks)

    @pytest.mark.parametrize("spec", [ANTHROPIC, OPENAI])
    def test_a_submission_stays_under_the_size_limit(
        self, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, spec: str
    ) -> None:
        """Long pairs fill the provider's size limit before its request limit; pairs stay whole."""
        from judges.provider_batch import submissions

        judge = JudgeRegistry.from_entry_points().judge(config_from_spec(spec))
        api = batch_api_for(judge)
        items = [(f"i{n}", Pair(f"q{n}", "x" * 2000, "y")) for n in range(5)]
        two_pairs = sum(api.request_bytes(r) for r in pair_requests(api, "i0", items[0][1])) * 2
        monkeypatch.setattr(type(api), "max_bytes", two_pairs + 100)
        chunks = list(submissions(items, api))
        assert [ids for ids, _ in chunks] == [["i0", "i1"], ["i2", "i3"], ["i4"]]
        for _, requests in chunks:
            assert sum(api.request_bytes(r) for r in requests) <= api.max_bytes
        if spec == OPENAI:  # the size counted is the size of the JSONL line sent
            line = {"custom_id": "i0-ab", "method": "POST", "url": "/v1/chat/completions"}
            sent = json.dumps({**line, "body": chunks[0][1][0].body}, ensure_ascii=False)
            assert api.request_bytes(chunks[0][1][0]) == len(sent.encode()) + 1


class TestLabel:
    @pytest.mark.parametrize("spec", [ANTHROPIC, OPENAI])
    def test_results_are_joined_and_stored_like_live_verdicts(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider, spec: str
    ) -> None:
        """Split into submissions, results out of order: every pair labeled once, at batch price."""
        provider.configure(policy="longer", batch_delay_s=0.2)
        path = write_pairs(tmp_path / "pairs.jsonl", 5)
        summary = label(settings, path, spec, max_requests=4)
        url = settings.database_url
        assert creates(provider) == 3  # 2 + 2 + 1 pairs, both orders of each together
        verdicts = rows(url, VERDICT_ROWS)
        assert [w for _, w in verdicts] == ["a" if i % 2 else "b" for i in range(5)]
        calls = rows(
            url,
            "SELECT shown_order, attempt, raw_output, input_tokens, output_tokens, cost_usd, "
            "parameters "
            "FROM judge_calls ORDER BY id",
        )
        assert sorted(c[0] for c in calls) == ["ab"] * 5 + ["ba"] * 5
        assert {c[1] for c in calls} == {1}
        provider_name, model = spec.split(":")
        for _, _, raw, tokens, outputs, cost, parameters in calls:
            params = parameters if isinstance(parameters, dict) else json.loads(parameters)
            assert params["provider_batch"].startswith(("msgbatch_", "batch_"))
            assert raw
            assert tokens > 0
            live = call_cost(provider_name, model, Usage(tokens, outputs))
            assert live is not None
            assert abs(Decimal(str(cost)) - live / 2) < Decimal("1e-8")  # half price
        assert summary.progress.labeled == 5
        assert rows(url, "SELECT count(*) FROM provider_batches WHERE status = 'collected'") == [
            (3,)
        ]

    def test_a_claim_cut_short_by_the_size_limit_submits_the_rest_later(
        self,
        tmp_path: Path,
        settings: Settings,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Pairs that do not fit go back to the queue and into the next submission."""
        from judges.backends.anthropic import AnthropicBatchAPI

        monkeypatch.setattr(AnthropicBatchAPI, "max_bytes", 8000)  # two pairs (~3.5 kB each)
        provider.configure(policy="longer")
        path = write_pairs(tmp_path / "pairs.jsonl", 5)
        summary = label(settings, path, ANTHROPIC)
        assert creates(provider) == 3
        assert summary.progress.labeled == 5
        url = settings.database_url
        assert [w for _, w in rows(url, VERDICT_ROWS)] == ["a" if i % 2 else "b" for i in range(5)]
        assert rows(url, "SELECT pairs, requests FROM provider_batches ORDER BY pairs DESC") == [
            (2, 4),
            (2, 4),
            (1, 2),
        ]

    def test_a_claim_fits_in_one_postgresql_statement(
        self,
        tmp_path: Path,
        settings: Settings,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """One order a pair and 100,000 requests a batch: never more rows than 65,535 parameters."""
        from app.store import batches

        real = batches.claim
        sizes: list[int] = []

        async def claim(*args: Any) -> Any:
            sizes.append(args[3])
            return await real(*args)

        monkeypatch.setattr(batches, "claim", claim)
        judges_file = tmp_path / "judges.yaml"
        judges_file.write_text(f"judges:\n  single:\n    spec: {ANTHROPIC}\n    order: single\n")
        path = write_pairs(tmp_path / "pairs.jsonl", 2)
        summary = label(settings.model_copy(update={"judges_file": judges_file}), path, "single")
        assert summary.progress.labeled == 2
        assert sizes
        assert max(sizes) < 65_535

    def test_a_failed_read_of_the_results_is_tried_again(
        self,
        tmp_path: Path,
        settings: Settings,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A dropped connection while downloading results is polled again, not a crash."""
        from judges.backends.anthropic import AnthropicBatchAPI
        from judges.errors import TransientJudgeError

        real = AnthropicBatchAPI.results
        reads: list[str] = []

        async def dropped() -> AsyncIterator[Any]:
            raise TransientJudgeError("connection reset while reading the results")
            yield  # an async generator, like the real one

        def flaky(self: AnthropicBatchAPI, batch_id: str) -> AsyncIterator[Any]:
            reads.append(batch_id)
            return dropped() if len(reads) == 1 else real(self, batch_id)

        monkeypatch.setattr(AnthropicBatchAPI, "results", flaky)
        provider.configure(policy="longer")
        path = write_pairs(tmp_path / "pairs.jsonl", 2)
        summary = label(settings, path, ANTHROPIC)
        assert len(reads) == 2
        assert summary.progress.labeled == 2
        assert creates(provider) == 1

    def test_a_submission_that_cannot_be_read_does_not_hold_up_the_others(
        self,
        tmp_path: Path,
        settings: Settings,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The readable submission is collected, then the unreadable one is reported."""
        from app.errors import JudgeUnavailableError
        from judges.backends.anthropic import AnthropicBatchAPI
        from judges.errors import JudgeConfigError
        from judges.provider_batch import BatchState

        real = AnthropicBatchAPI.state
        first: list[str] = []

        async def state(self: AnthropicBatchAPI, batch_id: str) -> BatchState:
            first[:] = first or [batch_id]
            if batch_id == first[0]:
                raise JudgeConfigError("not_found_error: no such batch")
            return await real(self, batch_id)

        monkeypatch.setattr(AnthropicBatchAPI, "state", state)
        provider.configure(policy="longer")
        path = write_pairs(tmp_path / "pairs.jsonl", 2)
        with pytest.raises(JudgeUnavailableError, match="no such batch"):
            label(settings, path, ANTHROPIC, max_requests=2)
        assert creates(provider) == 2
        assert rows(settings.database_url, "SELECT count(*) FROM verdicts") == [(1,)]
        assert rows(
            settings.database_url, "SELECT status FROM provider_batches ORDER BY status"
        ) == [("collected",), ("submitted",)]

    def test_a_run_back_after_the_lease_ran_out_collects_without_submitting_again(
        self,
        tmp_path: Path,
        settings: Settings,
        provider: FakeProvider,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Stopped after submitting and back more than a day later: the stored batch is polled."""

        async def stop_after_submitting(self: ProviderBatchRun) -> None:
            return None

        provider.configure(policy="longer")
        path = write_pairs(tmp_path / "pairs.jsonl", 3)
        with monkeypatch.context() as patch:
            patch.setattr(ProviderBatchRun, "_poll_until_collected", stop_after_submitting)
            label(settings, path, ANTHROPIC)
        assert creates(provider) == 1
        engine = create_engine(sync_url(settings.database_url))
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE comparisons SET lease_expires_at = :past").bindparams(
                    bindparam("past", type_=DateTime(timezone=True))
                ),
                {"past": datetime(2000, 1, 1, tzinfo=UTC)},
            )
        engine.dispose()
        summary = label(settings, path, ANTHROPIC)
        assert creates(provider) == 1
        assert summary.progress.labeled == 3
        assert rows(settings.database_url, "SELECT status FROM provider_batches") == [
            ("collected",)
        ]

    @pytest.mark.parametrize("spec", [ANTHROPIC, OPENAI])
    def test_expired_and_errored_requests_go_live_and_invalid_ones_fail(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider, spec: str
    ) -> None:
        """Nothing is dropped: retried live, or stored as the failure it is."""
        provider.configure(policy="longer", batch_fail_next=["expired", "errored", "invalid"])
        path = write_pairs(tmp_path / "pairs.jsonl", 3)
        label(settings, path, spec)
        url = settings.database_url
        calls = rows(
            url,
            "SELECT c.external_id, c.status, c.error_class, j.shown_order, j.attempt, "
            "j.error_class FROM judge_calls j JOIN comparisons c ON c.id = j.comparison_id "
            "ORDER BY c.external_id, j.shown_order, j.attempt",
        )
        by_pair: dict[str, list[tuple[Any, ...]]] = {}
        for external_id, *rest in calls:
            by_pair.setdefault(external_id, []).append(tuple(rest))
        # In submission order: the first pair's orders expired and errored (judged again
        # live, attempt 2); the next pair's first order was invalid (a final failure).
        assert sorted(by_pair.values(), key=repr) == [
            [("failed", "config", "ab", 1, "config"), ("failed", "config", "ba", 1, None)],
            [
                ("labeled", None, "ab", 1, "expired"),
                ("labeled", None, "ab", 2, None),
                ("labeled", None, "ba", 1, "transient"),
                ("labeled", None, "ba", 2, None),
            ],
            [("labeled", None, "ab", 1, None), ("labeled", None, "ba", 1, None)],
        ]
        live = {"/v1/messages", "/v1/chat/completions"}
        assert sum(1 for r in provider.requests() if r["path"] in live) == 2

    def test_provider_batch_mode_refuses_a_self_hosted_openai_server(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """A judge without a batch API is refused before anything is queued."""
        from app.errors import BadRequestError

        path = write_pairs(tmp_path / "pairs.jsonl", 1)
        settings_file = tmp_path / "judges.yaml"
        settings_file.write_text(
            f"judges:\n  local:\n    spec: {OPENAI}\n    base_url: {provider.openai_base_url}\n"
        )
        with pytest.raises(BadRequestError, match="base_url"):
            label(settings.model_copy(update={"judges_file": settings_file}), path, "local")
        assert rows(settings.database_url, "SELECT count(*) FROM comparisons") == [(0,)]


REFUSAL = {
    "code": "token_limit_exceeded",
    "message": "Enqueued token limit reached for gpt-4o-mini in organization org-test.",
    "line": None,
}
LIVE_PATHS = {"/v1/messages", "/v1/chat/completions"}


def live_calls(provider: FakeProvider) -> int:
    return sum(1 for r in provider.requests() if r["path"] in LIVE_PATHS)


class TestRefusedBatch:
    """A whole OpenAI batch ``failed`` (validation, token limit): reported, not run live."""

    def test_the_cli_reports_it_and_the_rerun_submits_the_pairs_again(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider, api: TestClient
    ) -> None:
        """Exit non-zero naming the batch and its errors; pairs pending; rerun labels each once."""
        provider.configure(policy="longer", batch_errors=[REFUSAL])
        path = write_pairs(tmp_path / "pairs.jsonl", 3)
        env = {"REFEREE_DATABASE_URL": settings.database_url}
        args = ["label", str(path), "--judge", OPENAI, "--mode", "provider-batch"]
        args += ["--poll-interval", "0.05"]
        first = CliRunner().invoke(cli, args, env=env)
        assert first.exit_code != 0
        url = settings.database_url
        ((batch_id, provider_batch_id, status, errors),) = rows(
            url, "SELECT batch_id, provider_batch_id, status, errors FROM provider_batches"
        )
        output = " ".join(first.output.split())  # the console wraps long lines
        assert f"openai batch {provider_batch_id} failed as a whole" in output
        assert "token_limit_exceeded: Enqueued token limit reached" in output
        assert "--mode live" in output
        assert "run the same command again" in output
        assert status == "failed"
        assert (errors if isinstance(errors, list) else json.loads(errors)) == [REFUSAL]
        assert live_calls(provider) == 0
        assert rows(url, "SELECT status, lease_owner, count(*) FROM comparisons GROUP BY 1, 2") == [
            ("pending", None, 3)
        ]
        assert rows(url, "SELECT count(*) FROM judge_calls") == [(0,)]
        state = api.get(f"/v1/batches/{batch_id}").json()
        (submission,) = state["provider_batches"]
        assert (submission["status"], submission["provider_status"]) == ("failed", "failed")
        assert submission["errors"] == [REFUSAL]
        assert state["counts"]["pending"] == 3

        provider.configure(batch_errors=[])
        second = CliRunner().invoke(cli, args, env=env)
        assert second.exit_code == 0, second.output
        assert creates(provider) == 2
        assert live_calls(provider) == 0
        assert rows(url, "SELECT count(*), count(DISTINCT comparison_id) FROM verdicts") == [(3, 3)]
        assert rows(url, "SELECT count(*) FROM judge_calls") == [(6,)]
        assert rows(url, "SELECT status FROM provider_batches ORDER BY status") == [
            ("collected",),
            ("failed",),
        ]

    def test_every_refused_submission_has_its_line(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """Two submissions refused: two lines naming them, then what to do."""
        from app.errors import ProviderBatchFailedError

        refusal = {"code": "invalid_json_line", "message": "bad line", "line": 2}
        provider.configure(batch_errors=[refusal, REFUSAL])
        path = write_pairs(tmp_path / "pairs.jsonl", 3)
        with pytest.raises(ProviderBatchFailedError) as raised:
            label(settings, path, OPENAI, max_requests=4)
        ids = [
            r[0]
            for r in rows(settings.database_url, "SELECT provider_batch_id FROM provider_batches")
        ]
        lines = raised.value.message.splitlines()
        assert len(ids) == 2
        assert len(lines) == 3
        assert sorted(next(i for i in ids if i in line) for line in lines[:2]) == sorted(ids)
        for line in lines[:2]:
            assert "invalid_json_line: bad line (line 2); token_limit_exceeded" in line
        assert lines[2].startswith("fix the cause")
        assert live_calls(provider) == 0
        assert rows(
            settings.database_url,
            "SELECT count(*) FROM comparisons WHERE status = 'pending' AND lease_owner IS NULL",
        ) == [(3,)]

    def test_http_shows_the_failure(self, api: TestClient, provider: FakeProvider) -> None:
        """POST /v1/batches?mode=provider-batch: the submission is failed with its errors."""
        provider.configure(batch_errors=[REFUSAL])
        items = [{"prompt": f"q{i}", "response_a": "x", "response_b": "y"} for i in range(2)]
        url = f"/v1/batches?judge={OPENAI}&mode=provider-batch&poll_interval=0.05"
        batch_id = api.post(url, json=items).json()["id"]
        deadline = time.monotonic() + 30
        while True:
            state = api.get(f"/v1/batches/{batch_id}").json()
            if [s["status"] for s in state["provider_batches"]] == ["failed"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        (submission,) = state["provider_batches"]
        assert submission["errors"] == [REFUSAL]
        assert (state["status"], state["counts"]["pending"]) == ("open", 2)
        assert live_calls(provider) == 0


LONG_TEMPLATE = prompt_templates.PairwiseTemplate(
    version="pairwise-test-long",
    system=prompt_templates.PAIRWISE_V1.system
    + "\n\nHouse guidelines.\n"
    + "Judge helpfulness first, then accuracy, then clarity. " * 120,
    instructions=prompt_templates.PAIRWISE_V1.instructions,
)


class TestPromptCaching:
    @pytest.fixture
    def long_preamble(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
        monkeypatch.setitem(prompt_templates.TEMPLATES, LONG_TEMPLATE.version, LONG_TEMPLATE)
        judges_file = tmp_path / "judges.yaml"
        judges_file.write_text(
            f"judges:\n  long:\n    spec: {ANTHROPIC}\n    template: {LONG_TEMPLATE.version}\n"
        )
        return judges_file

    def test_a_long_preamble_is_cached_and_the_tokens_are_stored_and_priced(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider, long_preamble: Path
    ) -> None:
        """One cache write, then reads; stored per call, counted in the cost and the summary."""
        path = write_pairs(tmp_path / "pairs.jsonl", 3)
        summary = label(settings.model_copy(update={"judges_file": long_preamble}), path, "long")
        body = next(r["body"] for r in provider.requests() if r["path"] == "/v1/messages/batches")
        system = body["requests"][0]["params"]["system"]
        assert system[0]["cache_control"] == {"type": "ephemeral"}
        calls = rows(
            settings.database_url,
            "SELECT input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, cost_usd "
            "FROM judge_calls ORDER BY cache_write_tokens DESC",
        )
        assert len(calls) == 6
        assert calls[0][2] >= min_cacheable_tokens("claude-sonnet-4-5")
        assert calls[0][3] == 0
        assert all(c[2] == 0 and c[3] == calls[0][2] for c in calls[1:])
        for inputs, outputs, write, read, cost in calls:
            usage = Usage(inputs, outputs, read, write)
            expected = call_cost("anthropic", "claude-sonnet-4-5", usage, batch=True)
            assert expected is not None
            assert abs(Decimal(str(cost)) - expected) < Decimal("1e-8")  # Numeric(14, 8)
        assert summary.progress.cache_write_tokens == calls[0][2]
        assert summary.progress.cache_read_tokens == 5 * calls[0][2]

    def test_live_calls_cache_the_long_preamble_too(
        self, provider: FakeProvider, long_preamble: Path
    ) -> None:
        """The live path sends the same marked preamble: the second call reads the cache."""
        config = config_from_spec(ANTHROPIC, template=LONG_TEMPLATE.version)
        judge = JudgeRegistry.from_entry_points().judge(config)
        pair = Pair("q", "a", "b")

        async def twice() -> tuple[RawAnswer, RawAnswer]:
            return await judge.answer(show(pair, Order.AB)), await judge.answer(
                show(pair, Order.BA)
            )

        first, second = asyncio.run(twice())
        assert first.usage.cache_write_tokens > 0
        assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
        assert second.usage.cache_write_tokens == 0

    def test_the_short_default_preamble_is_not_marked(self, provider: FakeProvider) -> None:
        """Below the model's minimum the system stays plain text."""
        judge = JudgeRegistry.from_entry_points().judge(config_from_spec(ANTHROPIC))
        asyncio.run(judge.answer(show(Pair("q", "a", "b"), Order.AB)))
        assert isinstance(provider.requests()[-1]["body"]["system"], str)


class TestPricing:
    def test_batch_rates_are_half_and_cache_tokens_are_priced_apart(self) -> None:
        """Sonnet 4.5: $3/M input, $15/M output, cache read $0.30/M, write $3.75/M; batch half."""
        plain = Usage(input_tokens=1000, output_tokens=100)
        assert call_cost("anthropic", "claude-sonnet-4-5", plain) == Decimal("0.0045")
        assert call_cost("anthropic", "claude-sonnet-4-5", plain, batch=True) == Decimal("0.00225")
        # Anthropic's input_tokens leave the cached tokens out; they are added for pricing.
        read = Usage(input_tokens=100, output_tokens=100, cache_read_tokens=900)
        assert call_cost("anthropic", "claude-sonnet-4-5", read) == Decimal("0.00207")
        write = Usage(input_tokens=100, output_tokens=100, cache_write_tokens=900)
        assert call_cost("anthropic", "claude-sonnet-4-5", write) == Decimal("0.005175")

    def test_an_unpriced_model_has_no_cost(self) -> None:
        """A self-hosted model is not given a made-up price in either mode."""
        assert call_cost("openai", "my-local-model", Usage(10, 10), batch=True) is None


class TestDryRun:
    def test_the_estimate_shows_live_and_batch_costs_side_by_side(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """The batch figure is half the live one; nothing is sent."""
        path = write_pairs(tmp_path / "pairs.jsonl", 4)
        env = {"REFEREE_DATABASE_URL": settings.database_url}
        result = CliRunner().invoke(
            cli, ["label", str(path), "--judge", ANTHROPIC, "--dry-run"], env=env
        )
        assert result.exit_code == 0, result.output
        line = result.output.splitlines()[-1]
        assert line.startswith("estimated cost $")
        live, batch = (Decimal(part.split("$")[1].split()[0]) for part in line.split("|"))
        assert batch == live / 2
        assert provider.requests() == []


class TestHttp:
    def test_post_batches_in_provider_batch_mode(
        self, api: TestClient, provider: FakeProvider
    ) -> None:
        """POST /v1/batches?mode=provider-batch: one submission, verdicts stored, batch done."""
        provider.configure(policy="longer")
        items = [
            {"prompt": f"q{i}", "response_a": "a fuller answer " * 4, "response_b": "no"}
            for i in range(4)
        ]
        response = api.post(
            f"/v1/batches?judge={OPENAI}&mode=provider-batch&poll_interval=0.05", json=items
        )
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]
        deadline = time.monotonic() + 30
        while (state := api.get(f"/v1/batches/{batch_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
        assert state["counts"]["labeled"] == 4
        assert creates(provider) == 1
        (submission,) = state["provider_batches"]
        assert (submission["status"], submission["pairs"], submission["requests"]) == (
            "collected",
            4,
            8,
        )
        results = api.get("/v1/comparisons", params={"batch_id": batch_id}).json()["items"]
        assert {r["verdict"]["winner"] for r in results} == {"a"}

    def test_a_batch_is_done_only_once_its_submission_is_collected(
        self, api: TestClient, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Verdicts are stored before the submission is marked collected: not done in between."""
        written = ProviderBatchRun._write

        async def then_pause(self: ProviderBatchRun, *args: Any) -> None:
            await written(self, *args)
            await asyncio.sleep(1.0)  # outside any transaction, before the submission is marked

        monkeypatch.setattr(ProviderBatchRun, "_write", then_pause)
        items = [{"prompt": "q", "response_a": "a fuller answer", "response_b": "no"}]
        url = f"/v1/batches?judge={OPENAI}&mode=provider-batch&poll_interval=0.05"
        batch_id = api.post(url, json=items).json()["id"]
        deadline = time.monotonic() + 30
        seen_labeled_while_collecting = False
        while (state := api.get(f"/v1/batches/{batch_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, state
            if state["counts"]["labeled"] == 1:
                seen_labeled_while_collecting = True
            time.sleep(0.05)
        assert seen_labeled_while_collecting
        assert [s["status"] for s in state["provider_batches"]] == ["collected"]

    def test_cancel_reaches_the_provider(self, api: TestClient, provider: FakeProvider) -> None:
        """Cancelling a batch cancels its open submission at the provider and its pending pairs."""
        provider.configure(batch_delay_s=60)
        items = [{"prompt": "q", "response_a": "x", "response_b": "y"}]
        url = f"/v1/batches?judge={ANTHROPIC}&mode=provider-batch&poll_interval=0.05"
        batch_id = api.post(url, json=items).json()["id"]
        deadline = time.monotonic() + 30
        while creates(provider) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)  # the submission is stored right after the provider accepts it
        cancelled = api.post(f"/v1/batches/{batch_id}/cancel").json()
        assert cancelled["counts"]["cancelled"] == 1
        paths = [r["path"] for r in provider.requests()]
        assert any(p.startswith("/v1/messages/batches/") and p.endswith("/cancel") for p in paths)

    def test_an_unknown_mode_is_refused(self, api: TestClient, provider: FakeProvider) -> None:
        """Only live and provider-batch exist."""
        response = api.post(f"/v1/batches?judge={OPENAI}&mode=offline", json=[])
        assert response.status_code == 422


class TestCli:
    @pytest.mark.parametrize(
        ("extra", "message"),
        [(["--mode", "offline"], "--mode must be one of"), (["--max-cost", "5"], "--max-cost")],
    )
    def test_bad_options_are_one_line_errors(
        self, tmp_path: Path, settings: Settings, extra: list[str], message: str
    ) -> None:
        """An unknown mode, or a budget in provider-batch mode, is refused before any work."""
        path = write_pairs(tmp_path / "pairs.jsonl", 1)
        args = ["label", str(path), "--judge", OPENAI, "--mode", "provider-batch", *extra]
        env = {"REFEREE_DATABASE_URL": settings.database_url, "OPENAI_API_KEY": "k"}
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code != 0
        assert message in result.output
        assert rows(settings.database_url, "SELECT count(*) FROM comparisons") == [(0,)]


class TestKilledWhilePending:
    def test_a_restarted_run_collects_without_submitting_again(
        self, tmp_path: Path, database_url: str, provider: FakeProvider
    ) -> None:
        """SIGKILL while the batch is pending; the rerun polls it: one create, verdicts once."""
        provider.configure(policy="longer", batch_delay_s=3.0)
        path = write_pairs(tmp_path / "pairs.jsonl", 6)
        env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
        command = [
            sys.executable,
            "-m",
            "app.cli",
            "label",
            str(path),
            "--judge",
            ANTHROPIC,
            "--mode",
            "provider-batch",
            "--poll-interval",
            "0.2",
        ]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while (
            creates(provider) == 0
            or not rows(database_url, "SELECT count(*) FROM provider_batches")[0][0]
        ):
            assert time.monotonic() < deadline
            assert first.poll() is None
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        assert rows(database_url, "SELECT count(*) FROM verdicts") == [(0,)]

        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert creates(provider) == 1
        assert rows(
            database_url, "SELECT count(*), count(DISTINCT comparison_id) FROM verdicts"
        ) == [(6, 6)]
        assert rows(database_url, "SELECT count(*) FROM judge_calls") == [(12,)]
        assert rows(database_url, "SELECT status FROM provider_batches") == [("collected",)]
