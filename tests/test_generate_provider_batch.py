"""``referee generate --mode provider-batch``: both providers' batch APIs through the real SDKs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.errors import BadRequestError, ProviderBatchFailedError
from app.labeling.pricing import call_cost
from app.labeling.provider_batch import ProviderBatchOptions
from app.labeling.rounds.generation_files import GenerateOptions, estimate
from app.labeling.rounds.generation_jobs import GenerationSpec
from app.settings import Settings
from judges.types import Usage
from tests.fake_provider import FakeProvider
from tests.test_generate import ANTHROPIC, OPENAI, candidates, prompts_file, rows, run

BATCH_CREATES = {"/v1/messages/batches", "/v1/batches"}
LIVE_CALLS = {"/v1/messages", "/v1/chat/completions"}


def batched(**options: Any) -> GenerateOptions:
    return GenerateOptions(
        rejects_path=None, provider_batch=ProviderBatchOptions(poll_seconds=0.05, **options)
    )


def paths(provider: FakeProvider) -> list[str]:
    return [str(r["path"]) for r in provider.requests()]


def creates(provider: FakeProvider) -> int:
    return sum(1 for p in paths(provider) if p in BATCH_CREATES)


SAMPLES = (
    "SELECT p.external_id, s.sample_index, s.status, s.seed, s.finish_reason, s.model,"
    " s.input_tokens, s.output_tokens, s.cost_usd, s.latency_ms, s.attempts, s.error_class,"
    " s.request_id FROM generation_samples s JOIN generation_prompts p ON p.id = s.prompt_id"
    " ORDER BY p.external_id, s.sample_index"
)


class TestProviderBatch:
    def test_openai_one_batch_with_n_per_request_and_batch_provenance(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        path = prompts_file(tmp_path / "prompts.jsonl", 3)
        spec = GenerationSpec(OPENAI, n=4, checkpoint="sft-1", temperature=0.7, seed=11)
        summary = run(settings, path, spec, batched())
        assert creates(provider) == 1
        assert not set(paths(provider)) & LIVE_CALLS  # nothing sampled live
        assert summary.status_counts == {"done": 12}
        by_prompt = candidates(settings, summary.generation_id)
        assert [p.external_id for p in by_prompt] == ["p0", "p1", "p2"]
        for prompt in by_prompt:
            assert sorted(i for c in prompt.candidates for i in c.sample_indexes) == [0, 1, 2, 3]
        stored = rows(settings.database_url, SAMPLES)
        assert len(stored) == 12
        assert {(r[2], r[3], r[4], r[5], r[10]) for r in stored} == {
            ("done", 11, "stop", "gpt-4o-mini", 1)
        }
        # One request of n=4 per prompt: four samples share a request id, one reads the prompt.
        assert len({r[12] for r in stored}) == 3
        assert sorted(r[6] > 0 for r in stored).count(True) == 3
        assert all(r[7] > 0 and r[9] >= 0 for r in stored)
        # Priced at the batch rates: the request's tokens at half the live price.
        for request_id in {r[12] for r in stored}:
            mine = [r for r in stored if r[12] == request_id]
            usage = Usage(
                input_tokens=sum(r[6] for r in mine), output_tokens=sum(r[7] for r in mine)
            )
            batch = call_cost("openai", "gpt-4o-mini", usage, batch=True)
            live = call_cost("openai", "gpt-4o-mini", usage)
            assert batch is not None
            assert live is not None
            assert batch < live
            assert sum(Decimal(str(r[8])) for r in mine) == batch.quantize(Decimal("1e-8"))
        assert summary.progress.cost == sum(Decimal(str(r[8])) for r in stored)

    def test_anthropic_one_request_per_sample_in_one_batch(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        summary = run(settings, path, GenerationSpec(ANTHROPIC, n=3, seed=5), batched())
        assert creates(provider) == 1
        create = next(r for r in provider.requests() if r["path"] == "/v1/messages/batches")
        requests = create["body"]["requests"]
        assert len(requests) == 6
        assert all(r["params"]["temperature"] == 1.0 for r in requests)
        assert all("extra_body" not in r["params"] and "seed" not in r["params"] for r in requests)
        assert summary.status_counts == {"done": 6}
        stored = rows(settings.database_url, SAMPLES)
        assert {(r[2], r[3], r[4]) for r in stored} == {("done", None, "end_turn")}
        assert len({r[12] for r in stored}) == 6
        assert all(r[6] > 0 and r[7] > 0 and Decimal(str(r[8])) > 0 for r in stored)

    def test_a_failed_batch_item_is_stored_as_a_failure_never_a_text(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        provider.configure(batch_fail_next=["invalid", "expired"])
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        summary = run(settings, path, GenerationSpec(ANTHROPIC, n=2), batched())
        assert summary.status_counts == {"done": 2, "failed": 2}
        failed = rows(
            settings.database_url,
            "SELECT candidate_id, error_class, error_message FROM generation_samples"
            " WHERE status = 'failed' ORDER BY error_class",
        )
        assert [(c, e) for c, e, _ in failed] == [(None, "config"), (None, "expired")]
        assert all(message for *_, message in failed)
        assert rows(settings.database_url, "SELECT sum(count) FROM generation_candidates") == [(2,)]
        assert creates(provider) == 1
        assert not set(paths(provider)) & LIVE_CALLS

    def test_a_batch_refused_as_a_whole_gives_its_samples_back_unsampled(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        refusal = {"code": "token_limit_exceeded", "message": "Enqueued token limit reached"}
        provider.configure(batch_errors=[refusal])
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        spec = GenerationSpec(OPENAI, n=2)
        with pytest.raises(ProviderBatchFailedError, match="failed as a whole"):
            run(settings, path, spec, batched())
        assert rows(
            settings.database_url,
            "SELECT status, lease_owner, count(*) FROM generation_samples"
            " GROUP BY status, lease_owner",
        ) == [("pending", None, 4)]
        assert rows(settings.database_url, "SELECT count(*) FROM generation_candidates") == [(0,)]
        provider.configure(batch_errors=[])
        summary = run(settings, path, spec, batched())
        assert summary.status_counts == {"done": 4}
        assert creates(provider) == 2

    def test_a_policy_without_a_batch_api_is_refused_before_anything_is_stored(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        spec = GenerationSpec(OPENAI, n=2, policy_options={"base_url": provider.url + "/v1"})
        with pytest.raises(BadRequestError, match="base_url"):
            run(settings, path, spec, batched())
        assert provider.requests() == []

    def test_dry_run_shows_the_discounted_estimate(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        path = prompts_file(tmp_path / "prompts.jsonl", 3)
        spec = GenerationSpec(OPENAI, n=4, max_tokens=100)

        async def go(options: GenerateOptions) -> Any:
            with path.open("rb") as stream:
                return await estimate(settings, stream, path.name, spec, options)

        live, batch = asyncio.run(go(GenerateOptions())), asyncio.run(go(batched()))
        assert (batch.samples, batch.requests) == (live.samples, live.requests) == (12, 3)
        assert batch.batch
        assert not live.batch
        assert live.cost is not None
        assert batch.cost is not None
        assert batch.cost == call_cost(
            "openai",
            "gpt-4o-mini",
            Usage(input_tokens=batch.input_tokens, output_tokens=batch.max_output_tokens),
            batch=True,
        )
        assert batch.cost < live.cost
        assert provider.requests() == []


def test_cli_dry_run_names_the_batch_rates(
    tmp_path: Path, database_url: str, provider: FakeProvider
) -> None:
    path = prompts_file(tmp_path / "prompts.jsonl", 2)
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "app.cli", "generate", str(path), "--policy", OPENAI]
    done = subprocess.run(
        [*command, "--mode", "provider-batch", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "at the provider-batch rates" in done.stdout
    refused = subprocess.run(
        [*command, "--mode", "provider-batch", "--max-cost", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "--max-cost works in live mode only" in refused.stdout + refused.stderr
    assert provider.requests() == []


def test_killed_after_submit_the_rerun_polls_the_same_batch(
    tmp_path: Path, database_url: str, provider: FakeProvider
) -> None:
    """SIGKILL while the batch is pending; the rerun collects it: one create, each index once."""
    provider.configure(batch_delay_s=3.0)
    path = prompts_file(tmp_path / "prompts.jsonl", 5)
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    command = [
        *(sys.executable, "-m", "app.cli", "generate", str(path), "--policy", OPENAI),
        *("-n", "3", "--mode", "provider-batch", "--poll-interval", "0.2"),
    ]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    held = "SELECT count(*) FROM generation_samples WHERE lease_owner LIKE 'provider-batch:%'"
    deadline = time.monotonic() + 60
    while creates(provider) == 0 or not rows(database_url, held)[0][0]:
        assert time.monotonic() < deadline
        assert first.poll() is None
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert rows(database_url, held) == [(15,)]
    assert rows(database_url, "SELECT count(*) FROM generation_candidates") == [(0,)]

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stderr
    assert creates(provider) == 1
    samples = rows(
        database_url,
        "SELECT p.external_id, s.sample_index, s.status, s.lease_owner FROM generation_samples s"
        " JOIN generation_prompts p ON p.id = s.prompt_id",
    )
    assert len(samples) == 15
    assert len({(p, i) for p, i, *_ in samples}) == 15
    assert {(status, owner) for *_, status, owner in samples} == {("done", None)}
    assert rows(database_url, "SELECT sum(count) FROM generation_candidates") == [(15,)]
    # The latency is the batch's: from submission (before the kill) to collection.
    latencies = rows(database_url, "SELECT min(latency_ms) FROM generation_samples")
    assert latencies[0][0] >= 1000
