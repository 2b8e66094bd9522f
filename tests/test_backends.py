"""The real SDK backends against the fake provider over loopback HTTP."""

from __future__ import annotations

import pytest

from judges import (
    JudgeRegistry,
    MissingCredentialsError,
    Order,
    Pair,
    UnknownJudgeError,
    Winner,
    config_from_spec,
    judge_pair,
)
from judges.backends.anthropic import AnthropicJudge
from judges.backends.openai import OpenAIJudge
from tests.conftest import ANTHROPIC_TEST_KEY
from tests.fake_provider import FakeProvider

PAIR = Pair("Name a prime.", "Seven is a prime number.", "Nine.")
FAST = {"max_attempts": 3, "timeout_s": 2.0}


def anthropic_judge(**options: object) -> AnthropicJudge:
    return AnthropicJudge(config_from_spec("anthropic:claude-sonnet-4-6", **{**FAST, **options}))


def openai_judge(**options: object) -> OpenAIJudge:
    return OpenAIJudge(config_from_spec("openai:gpt-4o-mini", **{**FAST, **options}))


class TestAnthropic:
    async def test_forced_tool_call_verdict_in_both_orders(self, provider: FakeProvider) -> None:
        """The verdict comes from a forced tool call; both orders are sent."""
        provider.configure(policy="longer")
        outcome = await judge_pair(anthropic_judge(), PAIR)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.A
        assert outcome.verdict.position_consistent is True
        bodies = [r["body"] for r in provider.requests()]
        assert len(bodies) == 2
        assert all(b["tool_choice"] == {"type": "tool", "name": "record_verdict"} for b in bodies)
        firsts = sorted(b["messages"][0]["content"].split("<response_1>")[1][:6] for b in bodies)
        assert firsts == ["\nNine.", "\nSeven"]
        assert all(c.usage.input_tokens > 0 for c in outcome.calls)

    async def test_rate_limit_is_retried_after_retry_after(self, provider: FakeProvider) -> None:
        """A 429 with retry-after is retried by our policy only (the SDK's retries are off)."""
        provider.configure(policy="longer", fail_next=["429"], retry_after=0.2)
        outcome = await judge_pair(anthropic_judge(order="single"), PAIR)
        assert outcome.verdict is not None
        assert [c.error_class for c in outcome.calls] == ["rate_limited", None]
        assert len(provider.requests()) == 2

    async def test_server_errors_exhaust_attempts_and_store_failure(
        self, provider: FakeProvider
    ) -> None:
        """Persistent 500s end as a transient failure after max_attempts, no verdict."""
        provider.configure(fail_rates={"500": 1.0})
        outcome = await judge_pair(anthropic_judge(order="single", max_attempts=2), PAIR)
        assert outcome.verdict is None
        assert outcome.error_class == "transient"
        assert [c.attempt for c in outcome.calls] == [1, 2]

    async def test_malformed_output_is_unparseable_and_not_retried(
        self, provider: FakeProvider
    ) -> None:
        """Prose instead of a tool call is stored raw as unparseable."""
        provider.configure(fail_next=["malformed"])
        outcome = await judge_pair(anthropic_judge(order="single"), PAIR)
        assert outcome.verdict is None
        assert outcome.error_class == "unparseable"
        assert outcome.calls[0].raw_output
        assert "first one is better" in outcome.calls[0].raw_output
        assert len(provider.requests()) == 1

    async def test_refusal(self, provider: FakeProvider) -> None:
        """A refusal stop reason is a refused failure."""
        provider.configure(fail_next=["refusal"])
        outcome = await judge_pair(anthropic_judge(order="single"), PAIR)
        assert outcome.error_class == "refused"

    async def test_hang_times_out(self, provider: FakeProvider) -> None:
        """A hung call ends at the configured timeout as a transient timeout."""
        provider.configure(fail_rates={"hang": 1.0}, hang_seconds=30)
        judge = anthropic_judge(order="single", timeout_s=0.3, max_attempts=1)
        outcome = await judge_pair(judge, PAIR)
        assert outcome.error_class == "timeout"

    async def test_the_key_goes_only_in_the_auth_header(self, provider: FakeProvider) -> None:
        """The provider key is sent in an auth header and appears nowhere in what we keep."""
        outcome = await judge_pair(anthropic_judge(order="single"), PAIR)
        headers = provider.requests()[0]["headers"]
        sent = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        assert sent == ANTHROPIC_TEST_KEY
        assert ANTHROPIC_TEST_KEY not in repr(outcome)

    def test_missing_key_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No key: a config error that says which variable to set."""
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
            anthropic_judge()


class TestOpenAI:
    async def test_json_schema_verdict(self, provider: FakeProvider) -> None:
        """response_format carries a strict JSON schema; the answer parses."""
        provider.configure(policy="shorter")
        outcome = await judge_pair(openai_judge(), PAIR)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.B
        body = provider.requests()[0]["body"]
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True

    async def test_logprobs_give_a_soft_preference_averaged_over_orders(
        self, provider: FakeProvider
    ) -> None:
        """P(first)=0.7 in both orders: position bias cancels, P(a) = 0.5 ± tie mass."""
        provider.configure(policy="first", p_first=0.7)
        outcome = await judge_pair(openai_judge(logprobs=True), PAIR)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.TIE
        assert outcome.verdict.position_consistent is False
        assert outcome.verdict.soft_preference == pytest.approx(0.5, abs=0.01)
        by_order = {c.order: c.answer for c in outcome.calls}
        ab = by_order[Order.AB]
        assert ab is not None
        assert ab.probabilities is not None
        assert ab.probabilities.first == pytest.approx(0.7, abs=0.01)

    async def test_consistent_soft_preference(self, provider: FakeProvider) -> None:
        """A content judge at 0.9 gives P(a) near 0.9 when a is the longer answer."""
        provider.configure(policy="longer")
        outcome = await judge_pair(openai_judge(logprobs=True), PAIR)
        assert outcome.verdict is not None
        assert outcome.verdict.winner is Winner.A
        assert outcome.verdict.soft_preference == pytest.approx(0.9 / 0.95, abs=0.01)
        assert outcome.verdict.confidence == pytest.approx(0.9, abs=0.01)

    async def test_refusal_and_malformed(self, provider: FakeProvider) -> None:
        """OpenAI's refusal field and non-JSON content are typed failures."""
        provider.configure(fail_next=["refusal", "malformed"])
        first = await judge_pair(openai_judge(order="single"), PAIR)
        second = await judge_pair(openai_judge(order="single"), PAIR)
        assert {first.error_class, second.error_class} == {"refused", "unparseable"}

    def test_base_url_without_key_is_allowed_for_self_hosted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A compatible server at an explicit base_url needs no OpenAI key."""
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        openai_judge(base_url="http://127.0.0.1:9/v1")
        with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
            openai_judge()


class TestRegistry:
    def test_builtins_come_from_entry_points(self) -> None:
        """anthropic and openai register through the referee.judges group."""
        registry = JudgeRegistry.from_entry_points()
        assert {"anthropic", "openai"} <= set(registry.providers)

    def test_unknown_provider_lists_known(self) -> None:
        """An unknown provider names the ones that exist."""
        with pytest.raises(UnknownJudgeError, match="anthropic, local, openai"):
            JudgeRegistry.from_entry_points().resolve("nope:model")

    def test_one_instance_per_configuration(self, provider: FakeProvider) -> None:
        """Judges (and their SDK clients) are shared, not rebuilt per call."""
        registry = JudgeRegistry.from_entry_points()
        config = registry.resolve("openai:gpt-4o-mini")
        assert registry.judge(config) is registry.judge(registry.resolve("openai:gpt-4o-mini"))
