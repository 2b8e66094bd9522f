"""The judge registry keeps a bounded LRU cache; evicted instances close, never mid-call."""

from __future__ import annotations

import asyncio
import functools
import ssl
from typing import Any

import openai
import pytest

from judges import JudgeRegistry
from judges.base import Judge, RawAnswer
from judges.config import JudgeConfig, config_from_spec
from judges.types import PairwiseAnswer, Position, ShownPair, Usage


class GatedJudge(Judge):
    """Answers once its gate opens; remembers whether it was closed under a call."""

    provider = "gated"

    def __init__(self, config: JudgeConfig, gate: asyncio.Event) -> None:
        super().__init__(config)
        self.gate = gate
        self.closed = False
        self.closed_mid_call = False

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        await self.gate.wait()
        self.closed_mid_call = self.closed
        return RawAnswer(PairwiseAnswer(Position.FIRST, "first"), "first", Usage(1, 1))

    async def aclose(self) -> None:
        self.closed = True


def gated_registry(cache_size: int, gate: asyncio.Event) -> JudgeRegistry:
    return JudgeRegistry({"gated": lambda config: GatedJudge(config, gate)}, cache_size=cache_size)


def gated(registry: JudgeRegistry, name: str) -> GatedJudge:
    judge = registry.judge(config_from_spec(f"gated:{name}"))
    assert isinstance(judge, GatedJudge)
    return judge


class TestJudgeCache:
    async def test_many_openai_names_keep_at_most_the_cache_size(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """1,200 distinct openai:<name> judges keep N instances; the evicted SDK clients close."""
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        # Each SDK client loads the CA bundle (~0.1 s); share one context so the
        # test measures the cache, not OpenSSL.
        create = functools.cache(ssl.create_default_context)

        def shared_context(*args: Any, **kwargs: Any) -> ssl.SSLContext:
            return create(*args, **kwargs)

        monkeypatch.setattr(ssl, "create_default_context", shared_context)
        closes = 0
        close = openai.AsyncOpenAI.close

        async def counted_close(client: openai.AsyncOpenAI) -> None:
            nonlocal closes
            closes += 1
            await close(client)

        monkeypatch.setattr(openai.AsyncOpenAI, "close", counted_close)
        registry = JudgeRegistry.from_entry_points(cache_size=16)
        sampled = {}
        for i in range(1200):
            judge = registry.judge(config_from_spec(f"openai:model-{i}"))
            assert registry.cached <= 16
            if i % 100 == 0 or i >= 1200 - 16:
                sampled[i] = judge
        await registry.wait_closed()
        assert closes == 1200 - 16
        evicted = [judge for i, judge in sampled.items() if i < 1200 - 16]
        kept = [judge for i, judge in sampled.items() if i >= 1200 - 16]
        assert len(evicted) == 12
        assert all(judge.client.is_closed() for judge in evicted)  # type: ignore[attr-defined]
        assert not any(judge.client.is_closed() for judge in kept)  # type: ignore[attr-defined]
        await registry.aclose()
        assert all(judge.client.is_closed() for judge in kept)  # type: ignore[attr-defined]

    async def test_recently_used_instances_stay(self) -> None:
        """Eviction takes the least recently used instance, not the oldest built."""
        registry = gated_registry(2, asyncio.Event())
        first = gated(registry, "a")
        gated(registry, "b")
        assert gated(registry, "a") is first  # a is now the most recently used
        gated(registry, "c")  # evicts b
        await registry.wait_closed()
        assert not first.closed
        assert gated(registry, "a") is first
        assert registry.cached == 2

    async def test_an_instance_in_use_is_not_closed_mid_call(self) -> None:
        """Evicted while a call is in flight, it closes when its last holder leaves."""
        gate = asyncio.Event()
        registry = gated_registry(1, gate)
        busy = gated(registry, "busy")

        async def call() -> None:
            async with registry.holding(busy):
                await busy.answer(ShownPair(prompt="p", first="x", second="y"))

        task = asyncio.create_task(call())
        await asyncio.sleep(0)
        for i in range(5):
            gated(registry, f"other-{i}")  # evicts busy, then each other in turn
        await registry.wait_closed()
        assert not busy.closed
        gate.set()
        await task
        await registry.wait_closed()
        assert busy.closed
        assert not busy.closed_mid_call

    async def test_an_evicted_instance_nobody_holds_is_closed(self) -> None:
        registry = gated_registry(1, asyncio.Event())
        idle = gated(registry, "idle")
        gated(registry, "next")
        await registry.wait_closed()
        assert idle.closed

    def test_the_cache_size_must_be_positive(self) -> None:
        from judges.errors import JudgeConfigError

        with pytest.raises(JudgeConfigError, match="at least 1"):
            JudgeRegistry({}, cache_size=0)
