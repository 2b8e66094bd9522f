"""The fake provider must be parsed by the REAL Anthropic and OpenAI SDKs.

These tests exercise the fake through the official clients (max_retries=0 so
every fault surfaces exactly once) rather than raw HTTP, because SDK parsing
is precisely what Referee relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import openai
import pydantic
import pytest
import pytest_asyncio
from openai.types.shared_params import ResponseFormatJSONSchema

from tests.fake_provider import FakeProvider, decide, extract_responses
from tests.fake_provider.outputs import fill_schema

PROMPT = (
    "Judge which response is better.\n<prompt>\nWhat is 2+2?\n</prompt>\n"
    "<response_1>\nFour.\n</response_1>\n"
    "<response_2>\nThe answer is 4, because 2+2=4.\n</response_2>"
)
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "winner": {"type": "string", "enum": ["1", "2", "tie"]},
    },
    "required": ["rationale", "winner"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as fp:
        yield fp


@pytest.fixture
def fp(server: FakeProvider) -> FakeProvider:
    server.reset()
    return server


# SDK clients are closed inside the test's loop: left to the GC, their pooled
# connections try to close on an already-closed loop and spam errors.
@pytest_asyncio.fixture
async def claude(fp: FakeProvider) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fp.anthropic_base_url, api_key="x", max_retries=0
    ) as client:
        yield client


@pytest_asyncio.fixture
async def gpt(fp: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fp.openai_base_url, api_key="x", max_retries=0
    ) as client:
        yield client


async def ask_claude(
    client: anthropic.AsyncAnthropic, prompt: str = PROMPT, **kw: Any
) -> anthropic.types.Message:
    args: dict[str, Any] = {
        "tools": [
            {"name": "record_verdict", "description": "Record it.", "input_schema": VERDICT_SCHEMA}
        ],
        "tool_choice": {"type": "tool", "name": "record_verdict"},
        **kw,
    }
    msg: anthropic.types.Message = await client.messages.create(
        model="claude-test", max_tokens=256, messages=[{"role": "user", "content": prompt}], **args
    )
    return msg


def schema_format(name: str, schema: dict[str, Any]) -> ResponseFormatJSONSchema:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


async def ask_gpt(client: openai.AsyncOpenAI, prompt: str = PROMPT, **kw: Any) -> Any:
    return await client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": prompt}],
        response_format=schema_format("verdict", VERDICT_SCHEMA),
        **kw,
    )


# --------------------------------------------------------------- happy paths


@pytest.mark.asyncio
async def test_anthropic_forced_tool_call_follows_policy(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fp.configure(policy="longer")
    msg = await ask_claude(claude)
    assert msg.stop_reason == "tool_use"
    block = msg.content[0]
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.name == "record_verdict"
    assert block.id.startswith("toolu_")
    assert block.input["winner"] == "2"
    assert isinstance(block.input["rationale"], str)
    assert msg.usage.input_tokens == len(PROMPT) // 4
    assert msg.usage.output_tokens >= 1
    (rec,) = fp.requests()
    assert rec["api"] == "anthropic"
    assert rec["path"] == "/v1/messages"
    assert rec["status"] == 200
    assert rec["body"]["tool_choice"]["name"] == "record_verdict"
    assert rec["fault"] is None
    assert "anthropic-version" in rec["headers"]


@pytest.mark.asyncio
async def test_anthropic_content_blocks_and_other_policies(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    blocks_prompt: Any = [{"type": "text", "text": "intro"}, {"type": "text", "text": PROMPT}]
    for policy, arg, expected in [
        ("first", None, "1"),
        ("second", None, "2"),
        ("shorter", None, "1"),
        ("tie", None, "tie"),
        ("contains", "because", "2"),
        ("contains", "nowhere", "tie"),
    ]:
        fp.configure(policy=policy, policy_arg=arg)
        msg = await ask_claude(claude, prompt=blocks_prompt)
        assert isinstance(msg.content[0], anthropic.types.ToolUseBlock)
        assert msg.content[0].input["winner"] == expected, policy


@pytest.mark.asyncio
async def test_openai_json_schema_parses(fp: FakeProvider, gpt: openai.AsyncOpenAI) -> None:
    fp.configure(policy="second")
    completion = await ask_gpt(gpt)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.refusal is None
    assert choice.logprobs is None  # not requested
    assert json.loads(choice.message.content)["winner"] == "2"
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )

    class Verdict(pydantic.BaseModel):
        rationale: str
        winner: str

    parsed = await gpt.chat.completions.parse(
        model="gpt-test", messages=[{"role": "user", "content": PROMPT}], response_format=Verdict
    )
    verdict = parsed.choices[0].message.parsed
    assert verdict is not None
    assert verdict.winner == "2"


@pytest.mark.asyncio
async def test_openai_logprobs_reflect_p_first(fp: FakeProvider, gpt: openai.AsyncOpenAI) -> None:
    fp.configure(p_first=0.7)
    completion = await ask_gpt(gpt, logprobs=True, top_logprobs=2)
    content = completion.choices[0].message.content
    tokens = completion.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == content
    assert all(bytes(t.bytes) == t.token.encode() for t in tokens)
    (winner,) = [t for t in tokens if len(t.top_logprobs) == 2]
    assert winner.token == "1" == json.loads(content)["winner"]
    assert [t.token for t in winner.top_logprobs] == ["1", "2"]  # most likely first, truncated to k
    assert math.exp(winner.top_logprobs[0].logprob) == pytest.approx(0.7)
    assert math.exp(winner.top_logprobs[1].logprob) == pytest.approx(0.299)
    others = [t for t in tokens if t is not winner]
    assert all(t.logprob == 0.0 and [x.token for x in t.top_logprobs] == [t.token] for t in others)


@pytest.mark.asyncio
async def test_generic_requests_fill_schema_or_use_scripted_output(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic, gpt: openai.AsyncOpenAI
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 3},
            "label": {"type": "string", "enum": ["good", "bad"]},
            "ok": {"type": "boolean"},
            "notes": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["score", "label", "ok", "notes"],
        "additionalProperties": False,
    }
    msg = await claude.messages.create(
        model="m",
        max_tokens=10,
        messages=[{"role": "user", "content": "Classify this."}],
        tools=[{"name": "classify", "description": "d", "input_schema": schema}],
        tool_choice={"type": "tool", "name": "classify"},
    )
    assert isinstance(msg.content[0], anthropic.types.ToolUseBlock)
    assert msg.content[0].input == {"score": 3, "label": "good", "ok": False, "notes": []}
    fp.configure(outputs={"classify": {"score": 9, "label": "bad", "ok": True, "notes": ["x"]}})
    completion = await gpt.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Classify this."}],
        response_format=schema_format("classify", schema),
    )
    assert (
        completion.choices[0].message.content == '{"score":9,"label":"bad","ok":true,"notes":["x"]}'
    )


@pytest.mark.asyncio
async def test_bad_requests_get_400(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic, gpt: openai.AsyncOpenAI
) -> None:
    loose: dict[str, Any] = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": [],
    }
    with pytest.raises(openai.BadRequestError):
        await gpt.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            response_format=schema_format("n", loose),
        )
    with pytest.raises(anthropic.BadRequestError):
        await ask_claude(claude, tool_choice={"type": "tool", "name": "missing"})
    assert fp.stats()["by_status"] == {"400": 2}


# -------------------------------------------------------------------- faults


@pytest.mark.asyncio
async def test_fail_next_429_then_success(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic, gpt: openai.AsyncOpenAI
) -> None:
    fp.configure(fail_next=["429", "429"], retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as a_err:
        await ask_claude(claude)
    assert a_err.value.response.headers["retry-after"] == "7"
    assert a_err.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(openai.RateLimitError) as o_err:
        await ask_gpt(gpt)
    assert o_err.value.response.headers["retry-after"] == "7"
    assert (await ask_claude(claude)).stop_reason == "tool_use"
    assert [r["fault"] for r in fp.requests()] == ["429", "429", None]
    assert fp.stats()["by_status"] == {"429": 2, "200": 1}


@pytest.mark.asyncio
async def test_server_errors(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic, gpt: openai.AsyncOpenAI
) -> None:
    fp.configure(fail_next=["500", "529", "500"])
    with pytest.raises(anthropic.InternalServerError) as a500:
        await ask_claude(claude)
    assert a500.value.status_code == 500
    with pytest.raises(anthropic.OverloadedError):
        await ask_claude(claude)
    with pytest.raises(openai.InternalServerError) as o500:
        await ask_gpt(gpt)
    assert o500.value.body["type"] == "server_error"  # type: ignore[index]
    assert fp.stats()["by_fault"] == {"500": 2, "529": 1}


@pytest.mark.asyncio
async def test_malformed_and_refusal_shapes(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic, gpt: openai.AsyncOpenAI
) -> None:
    fp.configure(fail_next=["malformed", "refusal", "malformed", "refusal"])
    bad = await ask_claude(claude)
    assert bad.stop_reason == "end_turn"
    assert [b.type for b in bad.content] == ["text"]
    refused = await ask_claude(claude)
    assert refused.stop_reason == "refusal"
    assert refused.content[0].type == "text"
    bad_o = await ask_gpt(gpt)
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad_o.choices[0].message.content)
    refused_o = await ask_gpt(gpt, logprobs=True)
    assert refused_o.choices[0].message.content is None
    assert refused_o.choices[0].message.refusal == "I can't help with that."


@pytest.mark.asyncio
async def test_fail_rates_are_seeded(fp: FakeProvider, gpt: openai.AsyncOpenAI) -> None:
    async def run() -> list[Any]:
        fp.reset()
        fp.configure(seed=3, fail_rates={"500": 0.3, "malformed": 0.2})
        for _ in range(30):
            with contextlib.suppress(openai.InternalServerError):
                await ask_gpt(gpt)
        return [r["fault"] for r in fp.requests()]

    first, second = await run(), await run()
    assert first == second
    assert {"500", "malformed", None} == set(first)


@pytest.mark.asyncio
async def test_hang_times_out_client(fp: FakeProvider, claude: anthropic.AsyncAnthropic) -> None:
    fp.configure(fail_next=["hang"], hang_seconds=5)
    with pytest.raises(anthropic.APITimeoutError):
        await ask_claude(claude.with_options(timeout=0.3))


@pytest.mark.asyncio
async def test_latency_is_honored_without_blocking(
    fp: FakeProvider, claude: anthropic.AsyncAnthropic
) -> None:
    fp.configure(latency_ms=300)
    start = time.perf_counter()
    results = await asyncio.gather(*(ask_claude(claude) for _ in range(40)))
    elapsed = time.perf_counter() - start
    assert len(results) == 40
    assert 0.3 <= elapsed < 1.5  # concurrent sleeps overlap on the server loop
    assert fp.stats()["max_in_flight"] > 1


@pytest.mark.asyncio
async def test_rpm_limit_answers_429_above_limit(fp: FakeProvider, gpt: openai.AsyncOpenAI) -> None:
    fp.configure(rpm_limit=2)
    await ask_gpt(gpt)
    await ask_gpt(gpt)
    with pytest.raises(openai.RateLimitError) as err:
        await ask_gpt(gpt)
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60
    assert err.value.body["type"] == "requests"  # type: ignore[index]
    stats = fp.stats()
    assert stats["rpm_limited"] == 1
    assert stats["by_status"] == {"200": 2, "429": 1}
    fp.reset()  # clears the window too
    await ask_gpt(gpt)


def test_reset_restores_defaults(fp: FakeProvider) -> None:
    fp.configure(policy="random", latency_ms=5, record=False)
    fp.reset()
    assert fp.settings()["policy"] == "first"
    assert fp.settings()["latency_ms"] == 0.0
    assert fp.requests() == []
    assert fp.stats()["total"] == 0
    with pytest.raises(ValueError, match="unknown setting"):
        fp.configure(polcy="first")  # typos are rejected, not silently ignored


def test_spawned_subprocess_variant() -> None:
    with FakeProvider.spawn(policy="second", record=False) as sp:

        async def go() -> None:
            async with anthropic.AsyncAnthropic(
                base_url=sp.anthropic_base_url, api_key="x", max_retries=0
            ) as client:
                msg = await ask_claude(client)
            assert isinstance(msg.content[0], anthropic.types.ToolUseBlock)
            assert msg.content[0].input["winner"] == "2"

        asyncio.run(go())
        assert sp.requests() == []
        assert sp.stats()["total"] == 1
        sp.reset()  # the spawn options are the baseline
        assert sp.settings()["policy"] == "second"


# ---------------------------------------------------------------- pure logic


def test_extract_and_decide() -> None:
    assert extract_responses("no fences") is None
    assert extract_responses("<response_1>\n\na\n</response_1><response_2>b</response_2>") == (
        "\na",
        "b",
    )
    rng = random.Random(0)
    picks = [decide("random", None, 0.8, "a", "b", rng).winner for _ in range(2000)]
    assert 0.75 < picks.count("1") / len(picks) < 0.85
    verdict = decide("second", None, 0.9, "a", "b", rng)  # p_first overrides the pick
    assert verdict.winner == "1"
    assert sum(verdict.probs.values()) == pytest.approx(1.0)
    assert decide("first", None, 1.0, "a", "b", rng).probs["2"] > 0  # clipped, finite log


def test_fill_schema_follows_refs_and_optionals() -> None:
    schema = {
        "$defs": {
            "Inner": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
        },
        "type": "object",
        "properties": {
            "inner": {"$ref": "#/$defs/Inner"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        },
        "required": ["inner", "maybe"],
    }
    assert fill_schema(schema) == {"inner": {"x": 0.5}, "maybe": "fake"}
