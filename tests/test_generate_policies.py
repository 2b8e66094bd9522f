"""Policies: request plans, usage shares, the SDK backends over the fake, a local causal LM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from judges.policies.base import (
    Choice,
    Draw,
    PlannedRequest,
    Policy,
    PolicyConfig,
    SamplingParams,
    draw_with_retries,
    plan_requests,
    policy_config,
    request_seed,
    usage_shares,
)
from judges.policies.registry import build_policy
from judges.types import Message, Usage
from tests.fake_provider import FakeProvider


class _Native(Policy):
    provider = "native"
    native_n = True
    max_n = 3

    async def draw(self, prompt: Any, n: int, params: SamplingParams, seed: int | None) -> Draw:
        raise NotImplementedError


class _Single(_Native):
    native_n = False
    max_n = 1
    takes_seed = False


NATIVE = _Native(PolicyConfig("native", "m"))
SINGLE = _Single(PolicyConfig("single", "m"))


class TestPlans:
    @pytest.mark.parametrize(
        ("policy", "indexes", "plans"),
        [
            (NATIVE, [0, 1, 2, 3], [(0, 3), (3, 1)]),
            (NATIVE, [1, 3, 4], [(1, 1), (3, 2)]),
            (NATIVE, [2, 0, 1], [(0, 3)]),
            (SINGLE, [0, 1, 2], [(0, 1), (1, 1), (2, 1)]),
            (NATIVE, [], []),
        ],
    )
    def test_consecutive_indexes_share_a_request_up_to_max_n(
        self, policy: Policy, indexes: list[int], plans: list[tuple[int, int]]
    ) -> None:
        """Native n: runs of indexes, at most max_n a request; otherwise one each."""
        assert plan_requests(indexes, policy) == [PlannedRequest(*p) for p in plans]

    def test_a_request_seed_is_the_base_plus_its_first_index(self) -> None:
        """Seeds repeat across runs; a provider without seeds gets none."""
        assert request_seed(10, PlannedRequest(3, 2), NATIVE) == 13
        assert request_seed(None, PlannedRequest(3, 2), NATIVE) is None
        assert request_seed(10, PlannedRequest(3, 1), SINGLE) is None


class TestUsageShares:
    @pytest.mark.parametrize(
        ("usage", "texts"),
        [
            (Usage(10, 7), ["a", "bb", "cccc"]),
            (Usage(5, 0), ["x", "y"]),
            (Usage(3, 100), ["", "long text" * 9, None]),
            (Usage(1, 1), ["only"]),
        ],
    )
    def test_shares_add_up_to_the_request(self, usage: Usage, texts: list[str | None]) -> None:
        """Input tokens on the first sample; output shared by length; sums are exact."""
        shares = usage_shares(usage, texts)
        assert len(shares) == len(texts)
        assert sum(s.input_tokens for s in shares) == usage.input_tokens
        assert shares[0].input_tokens == usage.input_tokens
        assert sum(s.output_tokens for s in shares) == usage.output_tokens
        assert all(s.output_tokens >= 0 for s in shares)


class TestConfig:
    @pytest.mark.parametrize(
        ("spec", "options", "message"),
        [
            ("openai", {}, "not provider:model"),
            ("openai:m", {"temprature": 1}, "unknown policy option"),
            ("openai:m", {"max_attempts": 0}, "positive integer"),
            ("local:m", {"dtype": "int3"}, "dtype"),
        ],
    )
    def test_bad_options_are_refused_by_name(
        self, spec: str, options: dict[str, Any], message: str
    ) -> None:
        """A misspelt or ill-typed option is a config error naming it."""
        from judges.errors import JudgeConfigError

        with pytest.raises(JudgeConfigError, match=message):
            policy_config(spec, **options)


def _draw(policy: Policy, n: int, seed: int | None, prompt: Any = "Hello there") -> Any:
    async def go() -> Any:
        try:
            return await draw_with_retries(
                policy, prompt, PlannedRequest(0, n), SamplingParams(0.9, None, 64), seed
            )
        finally:
            await policy.aclose()

    return asyncio.run(go())


class TestSdkPolicies:
    def test_openai_asks_for_n_once_and_the_fake_samples_seeded_distinct_texts(
        self, provider: FakeProvider
    ) -> None:
        """One request for n; distinct texts; the same seed gives the same texts."""
        first = _draw(build_policy(policy_config("openai:gpt-4o-mini")), 4, 5)
        again = _draw(build_policy(policy_config("openai:gpt-4o-mini")), 4, 5)
        other = _draw(build_policy(policy_config("openai:gpt-4o-mini")), 4, 6)
        texts = [c.text for c in first.draw.choices]
        assert len(set(texts)) == 4
        assert texts == [c.text for c in again.draw.choices]
        assert not set(texts) & {c.text for c in other.draw.choices}
        bodies = [r["body"] for r in provider.requests()]
        assert [(b["n"], b["seed"], b["max_tokens"]) for b in bodies] == [(4, 5, 64)] * 2 + [
            (4, 6, 64)
        ]

    def test_anthropic_sends_system_turns_apart_and_samples_distinct_texts(
        self, provider: FakeProvider
    ) -> None:
        """No n and no seed: each call one sample; a system turn goes to `system`."""
        prompt = (Message("system", "Be terse."), Message("user", "Hello there"))
        outcomes = [
            _draw(build_policy(policy_config("anthropic:claude-haiku-4-5")), 1, 3, prompt)
            for _ in range(3)
        ]
        assert len({o.draw.choices[0].text for o in outcomes}) == 3
        bodies = [r["body"] for r in provider.requests()]
        assert all("seed" not in b and b["system"] == "Be terse." for b in bodies)
        assert all(b["messages"] == [{"role": "user", "content": "Hello there"}] for b in bodies)

    def test_a_cut_off_sample_keeps_its_text_and_says_so(self, provider: FakeProvider) -> None:
        """A sample that hit max_tokens is a real (cut) text with finish_reason length."""
        policy = build_policy(policy_config("openai:gpt-4o-mini"))

        async def go() -> Any:
            try:
                return await draw_with_retries(
                    policy, "Hello", PlannedRequest(0, 1), SamplingParams(1.0, None, 2), 1
                )
            finally:
                await policy.aclose()

        outcome = asyncio.run(go())
        assert outcome.draw.choices == (Choice(outcome.draw.choices[0].text, "length"),)
        assert len(outcome.draw.choices[0].text) <= 8

    def test_transient_failures_are_retried_and_counted(self, provider: FakeProvider) -> None:
        """A 500 then a success: two attempts, one draw."""
        provider.configure(fail_next=["500"])
        policy = build_policy(policy_config("openai:gpt-4o-mini"))

        async def no_wait(_seconds: float) -> None:
            return None

        async def go() -> Any:
            try:
                return await draw_with_retries(
                    policy, "Hi", PlannedRequest(0, 2), SamplingParams(), 1, sleep=no_wait
                )
            finally:
                await policy.aclose()

        outcome = asyncio.run(go())
        assert outcome.attempts == 2
        assert outcome.draw is not None
        assert len(outcome.draw.choices) == 2


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight causal LM (the local extra's torch and transformers needed)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_models import build_causal_lm

    torch.set_num_threads(1)
    return build_causal_lm(tmp_path_factory.mktemp("policy") / "lm")


@contextmanager
def _quiet(_total: int) -> Iterator[Callable[[Any], None]]:
    yield lambda _p: None


class TestLocalPolicy:
    def test_samples_n_per_prompt_in_one_batch_with_token_counts(self, tiny_lm: Path) -> None:
        """Concurrent requests are batched; n sequences each; tokens counted; seeds repeat."""
        config = policy_config(f"local:{tiny_lm}", batch_size=4, device="cpu")

        async def go(seed: int) -> list[Any]:
            policy = build_policy(config)
            try:
                params = SamplingParams(1.0, None, 8)
                prompts: list[Any] = ["Hi", (Message("user", "Tell me more"),), "A third prompt"]
                return list(
                    await asyncio.gather(
                        *(
                            draw_with_retries(
                                policy,
                                p,
                                PlannedRequest(0, 3),
                                params,
                                seed,
                            )
                            for p in prompts
                        )
                    )
                )
            finally:
                await policy.aclose()

        outcomes = asyncio.run(go(4))
        for outcome in outcomes:
            assert outcome.error_class is None, outcome.error_message
            assert len(outcome.draw.choices) == 3
            assert outcome.draw.seed == 4
            assert outcome.draw.usage.input_tokens > 0
            assert 0 < outcome.draw.usage.output_tokens <= 3 * 8
            assert {c.finish_reason for c in outcome.draw.choices} <= {"stop", "length"}
        again = asyncio.run(go(4))
        assert [c.text for o in again for c in o.draw.choices] == [
            c.text for o in outcomes for c in o.draw.choices
        ]

    def test_a_prompt_longer_than_the_context_fails_alone(self, tiny_lm: Path) -> None:
        """Over the context: that request fails with a config error; nothing is made up."""
        config = policy_config(f"local:{tiny_lm}", device="cpu")

        async def go() -> Any:
            policy = build_policy(config)
            try:
                return await draw_with_retries(
                    policy, "x" * 600, PlannedRequest(0, 1), SamplingParams(1.0, None, 8), None
                )
            finally:
                await policy.aclose()

        outcome = asyncio.run(go())
        assert outcome.draw is None
        assert outcome.error_class == "config"
        assert "does not fit the model's context" in (outcome.error_message or "")

    def test_generate_stores_a_local_policy_s_candidates(
        self, tiny_lm: Path, tmp_path: Path, database_url: str
    ) -> None:
        """The whole path with an in-process policy: candidates stored, no cost (unpriced)."""
        from app.labeling.rounds.generation_files import GenerateOptions, generate_stream
        from app.labeling.rounds.generation_jobs import GenerationSpec
        from app.settings import Settings

        path = tmp_path / "prompts.jsonl"
        path.write_text('{"prompt": "Hi"}\n{"prompt": "Bye"}\n', encoding="utf-8")
        spec = GenerationSpec(
            f"local:{tiny_lm}", n=2, max_tokens=6, seed=1, policy_options={"device": "cpu"}
        )
        settings = Settings(database_url=database_url, judges_file=None)

        async def go() -> Any:
            with path.open("rb") as stream:
                return await generate_stream(
                    settings, stream, "p", spec, GenerateOptions(), _quiet, lambda _e: None
                )

        summary = asyncio.run(go())
        assert summary.status_counts == {"done": 4}
        assert summary.progress.cost == 0
        assert summary.progress.output_tokens > 0
