"""``referee generate``: candidates with provenance, resumable exactly once, budgeted, rejects."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app.labeling.rounds.generate import GenerationProgress
from app.labeling.rounds.generation_files import (
    GenerateOptions,
    GenerateSummary,
    estimate,
    generate_stream,
)
from app.labeling.rounds.generation_jobs import GenerationSpec
from app.settings import Settings
from app.store import generation as store
from app.store.db import Database, sync_url
from tests.fake_provider import FakeProvider

OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-haiku-4-5"


def prompts_file(path: Path, count: int, extra: list[str] | None = None) -> Path:
    lines = [json.dumps({"id": f"p{i}", "prompt": f"Question number {i}?"}) for i in range(count)]
    path.write_text("\n".join([*lines, *(extra or [])]) + "\n", encoding="utf-8")
    return path


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        result = [tuple(r) for r in connection.execute(text(sql)).fetchall()]
    engine.dispose()
    return result


@contextmanager
def quiet(_total: int) -> Iterator[Callable[[GenerationProgress], None]]:
    yield lambda _p: None


def run(
    settings: Settings,
    path: Path,
    spec: GenerationSpec,
    options: GenerateOptions | None = None,
    rejects: list[str] | None = None,
) -> GenerateSummary:
    async def go() -> GenerateSummary:
        with path.open("rb") as stream:
            return await generate_stream(
                settings,
                stream,
                path.name,
                spec,
                options or GenerateOptions(rejects_path=None),
                quiet,
                lambda e: (rejects if rejects is not None else []).append(str(e)),
            )

    return asyncio.run(go())


def candidates(settings: Settings, generation_id: str) -> list[store.PromptCandidates]:
    async def go() -> list[store.PromptCandidates]:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                import uuid

                return await store.candidates_by_prompt(session, uuid.UUID(generation_id))
        finally:
            await db.dispose()

    return asyncio.run(go())


def sampled_in(request: dict[str, Any]) -> int:
    return int((request["body"] or {}).get("n", 1))


class TestGenerate:
    def test_openai_draws_n_in_one_request_with_provenance(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """n=4 on OpenAI: one request per prompt; every sample stored with its provenance."""
        path = prompts_file(tmp_path / "prompts.jsonl", 3)
        spec = GenerationSpec(OPENAI, n=4, checkpoint="sft-1", temperature=0.8, top_p=0.9, seed=7)
        summary = run(settings, path, spec)
        requests = provider.requests()
        assert len(requests) == 3
        assert [r["body"]["n"] for r in requests] == [4, 4, 4]
        assert {r["body"]["seed"] for r in requests} == {7}  # first index 0 + base seed 7
        assert {r["body"]["temperature"] for r in requests} == {0.8}
        assert summary.status_counts == {"done": 12}
        by_prompt = candidates(settings, summary.generation_id)
        assert [p.external_id for p in by_prompt] == ["p0", "p1", "p2"]
        for prompt in by_prompt:
            assert len(prompt.candidates) == 4  # the fake samples distinct texts
            assert sorted(i for c in prompt.candidates for i in c.sample_indexes) == [0, 1, 2, 3]
        stored = rows(
            settings.database_url,
            "SELECT g.policy, g.checkpoint, s.seed, s.finish_reason, s.model, s.latency_ms,"
            " s.cost_usd, s.input_tokens, s.output_tokens FROM generation_samples s"
            " JOIN generations g ON g.id = s.generation_id",
        )
        assert {r[:5] for r in stored} == {(OPENAI, "sft-1", 7, "stop", "gpt-4o-mini")}
        assert all(r[5] > 0 and r[6] > 0 and r[8] > 0 for r in stored)
        # The prompt was read once per request: its tokens are on one sample of the four.
        assert sorted(r[7] > 0 for r in stored).count(True) == 3
        assert summary.progress.cost == sum(Decimal(str(r[6])) for r in stored)

    def test_anthropic_makes_one_request_per_sample_without_a_seed(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """Anthropic has no n: n requests per prompt, no seed sent, none stored."""
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        summary = run(settings, path, GenerationSpec(ANTHROPIC, n=3, seed=5))
        requests = provider.requests()
        assert len(requests) == 6
        assert all("seed" not in r["body"] and r["body"]["temperature"] == 1.0 for r in requests)
        assert summary.status_counts == {"done": 6}
        assert summary.candidates == 6
        assert rows(settings.database_url, "SELECT DISTINCT seed FROM generation_samples") == [
            (None,)
        ]

    def test_identical_texts_are_one_candidate_with_a_count(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """Samples that say the same thing are stored once, with how many said it."""
        provider.configure(candidate_variants=1)
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        summary = run(settings, path, GenerationSpec(OPENAI, n=4, seed=1))
        by_prompt = candidates(settings, summary.generation_id)
        assert [(len(p.candidates), p.candidates[0].count) for p in by_prompt] == [(1, 4), (1, 4)]
        assert by_prompt[0].candidates[0].sample_indexes == (0, 1, 2, 3)

    def test_a_failed_sample_stores_its_error_and_no_text(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """A request that fails for good leaves failed samples, no candidate; a rerun retries."""
        provider.configure(fail_next=["500"])  # the first request's only attempt
        path = prompts_file(tmp_path / "prompts.jsonl", 2)
        spec = GenerationSpec(OPENAI, n=2, seed=1, policy_options={"max_attempts": 1})
        summary = run(settings, path, spec, GenerateOptions(concurrency=1))
        assert summary.status_counts == {"done": 2, "failed": 2}
        by_prompt = candidates(settings, summary.generation_id)
        failed = [p for p in by_prompt if p.failed]
        assert len(failed) == 1
        assert failed[0].candidates == []
        assert {f.error_class for f in failed[0].failed} == {"transient"}
        assert rows(
            settings.database_url,
            "SELECT count(*) FROM generation_samples WHERE status = 'failed'"
            " AND candidate_id IS NULL AND attempts = 1",
        ) == [(2,)]
        again = run(settings, path, spec, GenerateOptions(retry_failed=True))
        assert again.status_counts == {"done": 4}

    def test_a_refused_choice_fails_alone(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """A refusal is a failed sample with its class, never a text."""
        provider.configure(fail_next=["refusal"])
        path = prompts_file(tmp_path / "prompts.jsonl", 1)
        summary = run(settings, path, GenerationSpec(OPENAI, n=1))
        assert summary.status_counts == {"failed": 1}
        assert rows(settings.database_url, "SELECT error_class FROM generation_samples") == [
            ("refused",)
        ]
        assert rows(settings.database_url, "SELECT count(*) FROM generation_candidates") == [(0,)]

    def test_bad_lines_are_rejected_with_file_line_and_field(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """Bad lines name FILE:LINE and the field; the good ones are sampled; repeats merge."""
        bad = [
            "{not json",
            json.dumps({"prompt": 3}),
            json.dumps({"prompt": "   "}),
            json.dumps({"prompt": [{"role": "robot", "content": "x"}]}),
            json.dumps({"prompt": "Question number 0?", "id": "again"}),
            json.dumps({"prompt": "ok", "extra": 1}),
        ]
        path = prompts_file(tmp_path / "prompts.jsonl", 2, bad)
        rejects: list[str] = []
        summary = run(settings, path, GenerationSpec(OPENAI, n=2), rejects=rejects)
        assert [r.split(":")[1] for r in rejects] == ["3", "4", "5", "6", "8"]
        assert rejects[0].startswith("prompts.jsonl:3: invalid JSON")
        assert "field 'prompt'" in rejects[1]
        assert "field 'prompt': prompt is empty" in rejects[2]
        assert "field 'prompt[0].role'" in rejects[3]
        assert "field 'extra'" in rejects[4]
        assert (summary.rejected, summary.merged, summary.submitted) == (5, 1, 2)
        assert summary.status_counts == {"done": 4}

    def test_dry_run_counts_requests_and_cost_and_sends_nothing(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """The dry run reads the file as the run would and prices it at max_tokens."""
        path = prompts_file(tmp_path / "prompts.jsonl", 3, ["{bad"])
        spec = GenerationSpec(OPENAI, n=4, max_tokens=100)
        rejects: list[str] = []

        async def go(spec: GenerationSpec) -> Any:
            with path.open("rb") as stream:
                return await estimate(
                    settings,
                    stream,
                    path.name,
                    spec,
                    GenerateOptions(),
                    lambda e: rejects.append(str(e)),
                )

        openai = asyncio.run(go(spec))
        assert (openai.prompts, openai.samples, openai.requests) == (3, 12, 3)
        assert openai.max_output_tokens == 1200
        assert openai.cost is not None
        assert openai.cost > 0
        assert openai.rejected == 1
        anthropic = asyncio.run(go(GenerationSpec(ANTHROPIC, n=4, max_tokens=100)))
        assert anthropic.requests == 12
        assert provider.requests() == []
        assert rows(settings.database_url, "SELECT count(*) FROM generations") == [(0,)]
        run(settings, path, spec)
        resumed = asyncio.run(go(spec))
        assert (resumed.samples, resumed.stored) == (0, 12)

    def test_max_cost_stops_cleanly_and_a_rerun_finishes(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """--max-cost stops claiming once spent; what is stored stays; the rerun completes."""
        path = prompts_file(tmp_path / "prompts.jsonl", 20)
        spec = GenerationSpec(OPENAI, n=2)
        summary = run(
            settings, path, spec, GenerateOptions(concurrency=1, max_cost=Decimal("1e-6"))
        )
        assert summary.progress.stop_reason == "budget of $0.000001 reached"
        # One request in flight: the stop comes with its answer, before the claimed next is sent.
        assert summary.status_counts["done"] == 2
        assert summary.status_counts["pending"] > 0
        done = run(settings, path, spec)
        assert done.status_counts == {"done": 40}

    def test_the_same_name_with_other_settings_is_refused(
        self, tmp_path: Path, settings: Settings, provider: FakeProvider
    ) -> None:
        """A resumed generation never mixes two policies' or two temperatures' samples."""
        from app.errors import InvalidInputError

        path = prompts_file(tmp_path / "prompts.jsonl", 1)
        run(settings, path, GenerationSpec(OPENAI, n=1, name="g"))
        with pytest.raises(InvalidInputError, match="exists with another params"):
            run(settings, path, GenerationSpec(OPENAI, n=1, name="g", temperature=0.2))


@pytest.fixture
def env(database_url: str, provider: FakeProvider) -> dict[str, str]:
    return {**os.environ, "REFEREE_DATABASE_URL": database_url}


def generate_cmd(path: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "generate", str(path), "--policy", OPENAI, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TestResume:
    def test_sigkill_then_resume_draws_each_index_exactly_once(
        self, tmp_path: Path, env: dict[str, str], database_url: str, provider: FakeProvider
    ) -> None:
        """Killed mid-run, then run again: every (prompt, index) once, nothing stored re-drawn."""
        provider.configure(latency_ms=150)
        path = prompts_file(tmp_path / "prompts.jsonl", 30)
        args = ("-n", "4", "--seed", "3", "--concurrency", "3")
        first = generate_cmd(path, env, *args)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if rows(database_url, "SELECT count(*) FROM alembic_version")[0][0]:
                done = rows(
                    database_url, "SELECT count(*) FROM generation_samples WHERE status = 'done'"
                )
                if done and done[0][0] >= 12:
                    break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        stored = rows(database_url, "SELECT count(*) FROM generation_samples WHERE status = 'done'")
        assert 0 < stored[0][0] < 120  # it really was cut short
        before = len(provider.requests())
        resumed = generate_cmd(path, env, *args)
        _out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        # The SDK's HTTP client logs no line per model call (CPU per sample, and noise).
        assert "HTTP Request" not in err
        again = provider.requests()[before:]
        assert sum(sampled_in(r) for r in again) == 120 - stored[0][0]  # only what was missing
        samples = rows(
            database_url,
            "SELECT p.external_id, s.sample_index, s.status FROM generation_samples s"
            " JOIN generation_prompts p ON p.id = s.prompt_id",
        )
        assert len(samples) == 120
        assert len({(p, i) for p, i, _ in samples}) == 120
        assert {status for *_, status in samples} == {"done"}
        counted = rows(database_url, "SELECT sum(count) FROM generation_candidates")
        assert counted == [(120,)]  # each sample counted in exactly one candidate, once
