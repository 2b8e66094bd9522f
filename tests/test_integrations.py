"""The training-loop adapters' client: retries, nulls, shapes, TRL's keyword arguments.

The server here is an ``httpx.MockTransport`` speaking ``POST /v1/rewards``'s
contract; tests/test_integrations_live.py runs the adapters against a real
``referee serve``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.integrations._client import (
    RetryPolicy,
    RewardItem,
    RewardRequestError,
    RewardsClient,
    RewardServiceError,
    RewardServiceUnavailable,
    retry_after_s,
)
from app.integrations.trl import AsyncRefereeReward, RefereeReward

ROOT = Path(__file__).resolve().parents[1]
URL = "http://referee.test"
SCORER = {"judge": "anthropic:claude-sonnet-4-5", "rubric": "helpfulness"}

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeRewards:
    """A /v1/rewards double: scores by a function of the item, or scripted answers first."""

    score: Callable[[dict[str, Any]], float | None] = lambda item: len(str(item["completion"]))
    script: list[httpx.Response | Exception] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[httpx.Headers] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == "/v1/rewards"
        body = json.loads(request.content)
        self.bodies.append(body)
        self.headers.append(request.headers)
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return httpx.Response(200, json={"scores": [self.score(i) for i in body["items"]]})

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self(request)


def client_for(fake: FakeRewards, **options: Any) -> tuple[RewardsClient, list[float]]:
    """A client whose sync and async transports are the fake, and the waits it slept."""
    slept: list[float] = []

    async def asleep(seconds: float) -> None:
        slept.append(seconds)

    client = RewardsClient(
        URL,
        transport=httpx.MockTransport(fake),
        async_transport=httpx.MockTransport(fake.handle_async),
        sleep=slept.append,
        asleep=asleep,
        **options,
    )
    return client, slept


def wire(reward: RefereeReward | AsyncRefereeReward, fake: FakeRewards) -> list[float]:
    client, slept = client_for(fake)
    reward.client.transport = client.transport
    reward.client.async_transport = client.async_transport
    reward.client.sleep = client.sleep
    reward.client.asleep = client.asleep
    return slept


def items(n: int) -> list[RewardItem]:
    return [RewardItem(prompt=f"q{i}", completion="x" * (i + 1)) for i in range(n)]


def too_many(retry_after: str) -> httpx.Response:
    error = {"code": "too_many_requests", "message": "busy", "details": {}}
    return httpx.Response(429, headers={"Retry-After": retry_after}, json={"error": error})


@pytest.fixture(params=["sync", "async"])
def score(request: pytest.FixtureRequest) -> Callable[..., list[float | None]]:
    """``client.score`` or ``client.ascore`` run to completion: every client test runs both."""

    def run(client: RewardsClient, batch: list[RewardItem]) -> list[float | None]:
        if request.param == "sync":
            return client.score(SCORER, batch)
        return asyncio.run(client.ascore(SCORER, batch))

    return run


class TestRetries:
    def test_429_waits_retry_after_then_sends_the_same_batch(self, score: Any) -> None:
        """A 429 is retried after exactly the seconds its Retry-After asks, with the same body."""
        fake = FakeRewards(script=[too_many("7"), too_many("2")])
        client, slept = client_for(fake)
        assert score(client, items(3)) == [1.0, 2.0, 3.0]
        assert slept == [7.0, 2.0]
        assert len(fake.bodies) == 3
        assert fake.bodies[0] == fake.bodies[1] == fake.bodies[2]  # the same idempotency key too

    def test_503_with_retry_after_is_retried(self, score: Any) -> None:
        """An overloaded 503 with Retry-After is waited out like a 429."""
        fake = FakeRewards(script=[httpx.Response(503, headers={"Retry-After": "4"})])
        client, slept = client_for(fake)
        assert score(client, items(1)) == [1.0]
        assert slept == [4.0]

    def test_503_without_retry_after_is_not_retried(self, score: Any) -> None:
        """A 503 that names no time to come back (a judge with no provider key) raises at once."""
        error = {"code": "judge_unavailable", "message": "no ANTHROPIC_API_KEY", "details": {}}
        fake = FakeRewards(script=[httpx.Response(503, json={"error": error})])
        client, slept = client_for(fake)
        with pytest.raises(RewardRequestError, match="503 judge_unavailable"):
            score(client, items(1))
        assert slept == []

    def test_connection_errors_back_off_exponentially(self, score: Any) -> None:
        """A refused or dropped connection is retried with growing waits."""
        fake = FakeRewards(
            script=[httpx.ConnectError("refused"), httpx.ReadError("reset"), httpx.Response(502)]
        )
        client, slept = client_for(fake, retry=RetryPolicy(backoff_s=0.5))
        assert score(client, items(2)) == [1.0, 2.0]
        assert slept == [0.5, 1.0, 2.0]

    def test_the_wait_budget_ends_in_a_clear_error(self, score: Any) -> None:
        """A server that stays busy past max_wait_s raises, naming the last problem."""
        fake = FakeRewards(script=[too_many("30")] * 5)
        client, slept = client_for(fake, retry=RetryPolicy(max_wait_s=60))
        with pytest.raises(RewardServiceUnavailable, match=r"HTTP 429.*max_wait_s"):
            score(client, items(1))
        assert slept == [30.0, 30.0]

    def test_a_refused_request_is_not_retried(self, score: Any) -> None:
        """A 4xx other than 429 raises at once with the server's error code and message."""
        error = {"code": "validation_error", "message": "items: too many", "details": {}}
        fake = FakeRewards(script=[httpx.Response(422, json={"error": error})])
        client, slept = client_for(fake)
        with pytest.raises(RewardRequestError, match="validation_error: items: too many") as exc:
            score(client, items(1))
        assert exc.value.status == 422
        assert len(fake.bodies) == 1
        assert slept == []

    @pytest.mark.parametrize(
        "answer",
        [
            {"scores": [0.5]},
            {"scores": [0.5, "high"]},
            {"scores": [0.5, True]},
            {"nothing": []},
            [0.5, 0.5],
        ],
        ids=["short", "string", "bool", "no-scores", "bare-list"],
    )
    def test_a_malformed_answer_raises(self, score: Any, answer: object) -> None:
        """An answer without one number-or-null per item is an error, never a guessed score."""
        fake = FakeRewards(script=[httpx.Response(200, json=answer)])
        client, _ = client_for(fake)
        with pytest.raises(RewardServiceError, match="score"):
            score(client, items(2))

    @pytest.mark.parametrize(
        ("header", "seconds"),
        [
            ("3", 3.0),
            ("0.5", 0.5),
            ("Sat, 05 Dec 2026 10:00:09 GMT", 9.0),
            ("Sat, 05 Dec 2026 09:59:00 GMT", 0.0),
            ("soon", None),
            ("", None),
            ("nan", None),
        ],
    )
    def test_retry_after_values(self, header: str, seconds: float | None) -> None:
        """Retry-After is delta-seconds or an HTTP date; anything else is ignored."""
        now = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
        assert retry_after_s(header, now) == seconds


class TestScores:
    def test_nulls_pass_through_as_none(self, score: Any) -> None:
        """A null score (failed item, deadline) comes back None in its place."""
        fake = FakeRewards(score=lambda item: None if item["prompt"] == "q1" else 0.25)
        client, _ = client_for(fake)
        assert score(client, items(3)) == [0.25, None, 0.25]

    def test_chunks_keep_input_order(self, score: Any) -> None:
        """A batch larger than batch_size goes out in chunks; scores come back in input order."""
        fake = FakeRewards()
        client, _ = client_for(fake, batch_size=4, max_concurrency=3)
        assert score(client, items(11)) == [float(i + 1) for i in range(11)]
        assert sorted(len(b["items"]) for b in fake.bodies) == [3, 4, 4]
        assert len({b["idempotency_key"] for b in fake.bodies}) == 3

    def test_body_key_and_deadline(self, score: Any) -> None:
        """The body is the pinned contract; the key is a bearer token; the deadline is timeout_s."""
        fake = FakeRewards()
        client, _ = client_for(fake, api_key="ref_abc", deadline_s=2.5)
        batch = [RewardItem("q", "a", reference="r", metadata={"run": "r1", "step": 3})]
        score(client, batch)
        assert len(fake.bodies[0].pop("idempotency_key")) == 32
        assert fake.bodies == [
            {
                "scorer": SCORER,
                "items": [
                    {
                        "prompt": "q",
                        "completion": "a",
                        "reference": "r",
                        "metadata": {"run": "r1", "step": 3},
                    }
                ],
                "timeout_s": 2.5,
            }
        ]
        assert fake.headers[0]["authorization"] == "Bearer ref_abc"

    def test_the_key_defaults_to_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """REFEREE_API_KEY is the key when none is passed."""
        monkeypatch.setenv("REFEREE_API_KEY", "ref_env")
        assert RewardsClient(URL).api_key == "ref_env"
        assert RewardsClient(URL, api_key="ref_arg").api_key == "ref_arg"


def trl_kwargs(**columns: Any) -> dict[str, Any]:
    """What GRPOTrainer passes besides prompts and completions (trl 1.16 _calculate_rewards)."""

    @dataclass
    class State:
        global_step: int = 4

    return {"completion_ids": [[1, 2]] * 2, "trainer_state": State(), **columns}


class TestTrlReward:
    def test_plain_text_with_trl_keywords(self) -> None:
        """Plain prompts; the reference column, metadata columns, run and step travel per item."""
        fake = FakeRewards(score=lambda item: 0.75)
        reward = RefereeReward(
            URL,
            judge="openai:gpt-4o-mini",
            rubric="helpfulness",
            run="grpo-7",
            reference_column="solution",
            metadata_columns=["topic"],
        )
        wire(reward, fake)
        scores = reward(
            prompts=["2+2?", "3+3?"],
            completions=["4", "6"],
            **trl_kwargs(solution=["4", 6], topic=["sums", "sums"], log_extra=print),
        )
        assert scores == [0.75, 0.75]
        [body] = fake.bodies
        assert body["scorer"] == {"judge": "openai:gpt-4o-mini", "rubric": "helpfulness"}
        assert body["items"][1] == {
            "prompt": "3+3?",
            "completion": "6",
            "reference": "6",
            "metadata": {"topic": "sums", "run": "grpo-7", "step": 5},
        }

    def test_conversational_prompts_and_completions(self) -> None:
        """Messages keep role and content only; a completion is one assistant message."""
        fake = FakeRewards(score=lambda item: 1.0)
        reward = RefereeReward(URL, judge="anthropic:claude-sonnet-4-5")
        wire(reward, fake)
        prompt = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image"}]},
        ]
        tool_loop = [
            {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "1"}]},
            {"role": "tool", "name": "search", "content": "42"},
            {"role": "assistant", "content": "It is 42."},
        ]
        completions = [[{"role": "assistant", "content": "Hello!", "thinking": "…"}], tool_loop]
        assert reward(prompts=[prompt, prompt], completions=completions, **trl_kwargs()) == [
            1.0,
            1.0,
        ]
        sent = fake.bodies[0]["items"]
        assert sent[0]["prompt"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]
        assert sent[0]["completion"] == [{"role": "assistant", "content": "Hello!"}]
        assert sent[1]["completion"] == [
            {"role": "assistant", "content": "Let me look.\n\nIt is 42."}
        ]
        assert "reference" not in sent[0]

    def test_nulls_are_none_and_logged(self) -> None:
        """A null is None for TRL, and GRPO's log_metric gets the share of nulls."""
        fake = FakeRewards(score=lambda item: None if item["completion"] == "b" else 0.5)
        reward = RefereeReward(URL, judge="anthropic:claude-sonnet-4-5")
        wire(reward, fake)
        logged: dict[str, float] = {}
        scores = reward(
            prompts=["p"] * 4,
            completions=["a", "b", "b", "c"],
            **trl_kwargs(log_metric=logged.__setitem__),
        )
        assert scores == [0.5, None, None, 0.5]
        assert logged == {"referee/null_fraction": 0.5}

    def test_async_variant(self) -> None:
        """AsyncRefereeReward's __call__ is a coroutine function, as TRL detects async rewards."""
        fake = FakeRewards(score=lambda item: None if item["completion"] == "b" else 0.5)
        reward = AsyncRefereeReward(URL, judge="anthropic:claude-sonnet-4-5", run="r")
        wire(reward, fake)
        assert inspect.iscoroutinefunction(type(reward).__call__)
        assert not inspect.iscoroutinefunction(type(RefereeReward).__call__)
        scores = asyncio.run(reward(prompts=["p", "p"], completions=["a", "b"], **trl_kwargs()))
        assert scores == [0.5, None]
        assert fake.bodies[0]["items"][0]["metadata"] == {"run": "r", "step": 5}

    def test_name_for_trl_logs(self) -> None:
        """__name__ is readable and safe as a metric key; name= overrides it."""
        reward = RefereeReward(URL, judge="openai:Qwen/Qwen2.5-7B")
        assert reward.__name__ == "referee_openai_Qwen_Qwen2.5-7B"
        assert RefereeReward(URL, judge="x:y", name="judge_reward").__name__ == "judge_reward"

    def test_pickles_after_use(self) -> None:
        """A used reward function pickles (no connection pool inside) and still works."""
        fake = FakeRewards()
        reward = RefereeReward(URL, judge="anthropic:claude-sonnet-4-5", api_key="ref_k")
        reward.client.transport = httpx.MockTransport(fake)
        reward(prompts=["p"], completions=["abc"], **trl_kwargs())
        copy = pickle.loads(pickle.dumps(reward))  # noqa: S301 - our own bytes
        assert copy.__name__ == reward.__name__
        assert copy.client.api_key == "ref_k"
        wire(copy, fake)
        assert copy(prompts=["p"], completions=["abcd"], **trl_kwargs()) == [4.0]

    def test_mismatched_lengths_are_refused(self) -> None:
        """More prompts than completions is a caller error, before any request."""
        reward = RefereeReward(URL, judge="anthropic:claude-sonnet-4-5")
        with pytest.raises(ValueError, match="2 prompts but 1 completions"):
            reward(prompts=["a", "b"], completions=["x"], **trl_kwargs())


SERVER_PACKAGES = [
    "fastapi", "starlette", "sqlalchemy", "pydantic", "pydantic_settings", "alembic",
    "anthropic", "openai", "uvicorn", "typer", "yaml", "numpy", "torch", "transformers",
    "trl", "judges", "app.api", "app.store", "app.labeling", "app.settings", "app.errors",
]  # fmt: skip


def test_adapters_import_with_only_httpx() -> None:
    """In a process where the server's dependencies cannot be imported, both adapters can."""
    code = textwrap.dedent(
        f"""
        import sys
        BLOCKED = {SERVER_PACKAGES!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import app.integrations.trl, app.integrations.verl
        from app.integrations.trl import RefereeReward
        reward = RefereeReward("http://127.0.0.1:1", judge="anthropic:claude-sonnet-4-5")
        blocked = [m for m in sys.modules for b in BLOCKED if m == b or m.startswith(b + ".")]
        loaded = sorted(blocked)
        print("loaded:", loaded, reward.__name__)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "loaded: [] referee_anthropic_claude-sonnet-4-5" in result.stdout


def test_the_block_would_catch_a_server_import() -> None:
    """The import test's finder really refuses a server package (so its pass means something)."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "sqlalchemy" or name.startswith("sqlalchemy."):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import app.store.db
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "blocked: sqlalchemy" in result.stderr
