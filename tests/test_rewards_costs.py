"""What the reward path saves per completion keeps every result the same.

The reward service computes once per request (or per model and minute)
what it used to compute per item; these tests hold those shortcuts to the
results of the long way.
"""

from __future__ import annotations

import gc
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from genai_prices import calc_price

from app.labeling import pricing
from app.labeling.heap import SERVING_THRESHOLDS, serving_collector
from judges.prompts import RATING_TOOL_NAME
from judges.types import Usage
from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"


class TestSharedRatings:
    @pytest.mark.parametrize(
        "prompt",
        ["How do I boil an egg?", [{"role": "user", "content": "How do I boil an egg?"}]],
        ids=["text", "messages"],
    )
    def test_a_reward_is_the_rating_post_v1_ratings_finds(
        self, api: TestClient, provider: FakeProvider, prompt: object
    ) -> None:
        """The reward's key is the rating use case's: rating the same content calls no model."""
        provider.configure(outputs={RATING_TOOL_NAME: {"rationale": "ok", "score": 8}})
        completion = "Simmer it for nine minutes."
        reward = api.post(
            "/v1/rewards",
            json={
                "scorer": {"judge": JUDGE},
                "items": [{"prompt": prompt, "completion": completion}],
            },
        )
        assert reward.json()["scores"] == [7 / 9], reward.text
        rating = api.post(
            "/v1/ratings", json={"prompt": prompt, "response": completion, "judge": JUDGE}
        )
        assert rating.status_code == 200, rating.text
        assert rating.json()["reused"] is True
        assert rating.json()["id"] == reward.json()["items"][0]["rating_id"]
        assert len(provider.requests()) == 1


def table_cost(provider: str, model: str, usage: Usage, batch: bool, when: datetime) -> Decimal:
    """The price table's own answer, the long way."""
    price = calc_price(
        pricing.price_usage(provider, usage),
        model_ref=model,
        provider_id=provider,
        genai_request_timestamp=when,
        price_context=pricing.BATCH_CONTEXT if batch else None,
    )
    return Decimal(price.total_price)


class TestCallCost:
    @pytest.mark.parametrize(
        ("provider", "model"),
        [
            ("anthropic", "claude-sonnet-4-6"),
            ("anthropic", "claude-opus-4-7"),
            ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input tokens
            ("anthropic", "claude-haiku-5-5"),  # tiered above 100k
            ("openai", "gpt-4o-mini"),
            ("openai", "gpt-5"),
        ],
    )
    @pytest.mark.parametrize("batch", [False, True])
    def test_the_cost_is_the_price_tables(self, provider: str, model: str, batch: bool) -> None:
        """Per-token rates where the price is linear, the table where it is not: same cost."""
        rng = random.Random(f"{provider}{model}{batch}")
        for _ in range(100):
            tokens = rng.choice([rng.randint(0, 4000), rng.randint(0, 400_000)])
            cached = rng.randint(0, tokens) if provider == "openai" else rng.randint(0, 9000)
            written = 0 if provider == "openai" else rng.randint(0, 9000)
            usage = Usage(tokens, rng.randint(0, 4000), cached, written)
            minute = datetime.now(UTC).replace(second=0, microsecond=0)
            cost = pricing.call_cost(provider, model, usage, batch=batch)
            if datetime.now(UTC).replace(second=0, microsecond=0) != minute:
                continue  # the minute turned between the two: another price may apply
            assert cost == table_cost(provider, model, usage, batch, minute), usage

    def test_a_tiered_price_has_no_rates(self) -> None:
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        assert pricing._linear_rates("anthropic", "claude-haiku-5-5", False, minute) is None
        assert pricing._linear_rates("anthropic", "claude-sonnet-4-6", False, minute) is not None

    def test_an_unknown_model_has_no_cost(self) -> None:
        assert pricing.call_cost("anthropic", "claude-fake-9", Usage(10, 10)) is None


class TestServingCollector:
    def test_startup_is_frozen_and_thawed_at_shutdown(self) -> None:
        before = gc.get_threshold()
        with serving_collector():
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == SERVING_THRESHOLDS
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before

    def test_the_app_serves_with_it(self, api: TestClient) -> None:
        assert gc.get_freeze_count() > 0
        assert api.get("/healthz").status_code == 200
