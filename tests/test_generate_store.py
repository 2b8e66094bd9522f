"""The generation store: prompts with their samples, claims, identical texts once with a count."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from app.store import generation as store
from app.store.db import Database


def _result(sample_id: int, text: str | None, error: str | None = None) -> store.SampleResult:
    return store.SampleResult(
        sample_id=sample_id,
        text=text,
        request_id="r1",
        seed=7,
        model="m",
        finish_reason="stop" if text is not None else None,
        input_tokens=3,
        output_tokens=2,
        cost_usd=Decimal("0.001"),
        latency_ms=5.0,
        attempts=1,
        error_class=error,
        error_message="boom" if error else None,
    )


async def _scenario(url: str) -> None:
    db = Database(url)
    try:
        values = {
            "name": "g1",
            "source": "prompts.jsonl",
            "policy": "openai:m",
            "policy_config": {},
            "checkpoint": "ckpt-1",
            "n": 3,
            "params": {"temperature": 1.0},
            "seed": 7,
        }
        async with db.transaction() as session:
            gen, created = await store.get_or_create(session, values)
            assert created
            rows = [
                {"prompt_key": "k1", "prompt": "hi", "external_id": "p1", "source_line": 1},
                {
                    "prompt_key": "k2",
                    "prompt": [{"role": "user", "content": "yo"}],
                    "source_line": 2,
                },
            ]
            assert await store.add_prompts(session, gen, rows) == 2
            assert await store.add_prompts(session, gen, rows) == 0
        async with db.transaction() as session:
            again, created = await store.get_or_create(session, values)
            assert not created
            assert again.id == gen.id
            assert (await store.find(session, "g1")) is not None
            assert (await store.find(session, str(gen.id))) is not None
            claimed = await store.claim(session, gen.id, "w1", 10, timedelta(seconds=60))
        assert [(c.sample_index, c.prompt) for c in claimed][:3] == [
            (0, "hi"),
            (1, "hi"),
            (2, "hi"),
        ]
        async with db.transaction() as session:
            assert await store.claim(session, gen.id, "w2", 10, timedelta(seconds=60)) == []
            ids = [c.sample_id for c in claimed]
            owned = await store.take_ownership(session, "w1", ids[:5])
            assert owned == set(ids[:5])
            await store.write_samples(
                session,
                gen.id,
                [
                    _result(ids[0], "same"),
                    _result(ids[1], "other"),
                    _result(ids[2], "same"),
                    _result(ids[3], None, "transient"),
                    _result(ids[4], "x"),
                ],
            )
            assert await store.take_ownership(session, "w1", ids[:5]) == set()
        async with db.transaction() as session:
            by_prompt = await store.candidates_by_prompt(session, gen.id)
            counts = await store.status_counts(session, gen.id)
            cost = await store.total_cost(session, gen.id)
        first, second = by_prompt
        assert first.prompt == "hi"
        assert first.external_id == "p1"
        assert [(c.text, c.count, c.sample_indexes) for c in first.candidates] == [
            ("same", 2, (0, 2)),
            ("other", 1, (1,)),
        ]
        assert second.prompt == [{"role": "user", "content": "yo"}]
        assert [f.sample_index for f in second.failed] == [0]
        assert second.pending == 1
        assert counts == {"done": 4, "failed": 1, "pending": 1}
        assert cost == Decimal("0.005")
    finally:
        await db.dispose()


class TestGenerationStore:
    def test_round_trip(self, database_url: str) -> None:
        """Samples are claimed once, written once, and equal texts share one candidate."""
        asyncio.run(_scenario(database_url))
