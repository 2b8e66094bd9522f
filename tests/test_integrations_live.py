"""The training-loop adapters against a live Referee server, judging through the fake provider.

The server is the real app under uvicorn on a loopback port (as ``referee
serve`` runs it), with auth required and a ``label`` key; its judge is
``anthropic:…`` pointed at tests/fake_provider. TRL's ``GRPOTrainer`` trains
one step on a tiny random model with the adapters as its reward functions,
and the rewards it logged are compared with the rows Referee stored. verl's
``compute_score`` is called the way verl's reward loop calls it.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.api.app import create_app
from app.integrations import verl
from app.integrations._client import RewardItem as Item
from app.integrations._client import RewardsClient, RewardServiceError
from app.labeling.admin import create_key
from app.settings import Settings
from app.store import migrate
from app.store.models_rewards import RewardItem
from judges.prompts import RATING_TOOL_NAME
from tests.conftest import ANTHROPIC_TEST_KEY
from tests.fake_provider import FakeProvider
from tests.test_export_resources import uvicorn_server

JUDGE = "anthropic:claude-sonnet-4-5"


@contextmanager
def serve(tmp_path: Path, **settings: Any) -> Iterator[tuple[str, str, str]]:
    """(base URL, a label key, database URL) of a live server on a fresh SQLite database."""
    url = f"sqlite:///{tmp_path / 'referee.db'}"
    migrate.upgrade(url)
    config = Settings(database_url=url, judges_file=None, **settings)
    _, key = asyncio.run(create_key(config, "trainer", ["label"]))
    with uvicorn_server(create_app(config)) as server:
        yield server.base_url, key, url


@pytest.fixture
def live(
    tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, str]]:
    """A live server with default settings; the SDKs talk to the fake provider."""
    monkeypatch.delenv("REFEREE_API_KEY", raising=False)
    assert os.environ["ANTHROPIC_API_KEY"] == ANTHROPIC_TEST_KEY
    with serve(tmp_path) as running:
        yield running


def stored(database_url: str, run: str) -> list[RewardItem]:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(RewardItem).where(RewardItem.run == run)).all()
            session.expunge_all()
            return list(rows)
    finally:
        engine.dispose()


def rate(provider: FakeProvider, score: int) -> None:
    """The fake judge's rating for every item (1-10 scale: reward (score - 1) / 9)."""
    provider.configure(outputs={RATING_TOOL_NAME: {"rationale": "ok", "score": score}})


def test_a_full_queue_is_waited_out(tmp_path: Path, provider: FakeProvider) -> None:
    """Two trainers at once past the server's queue: the one refused with 429 waits the
    Retry-After the server sent, sends again, and gets its scores; nothing is lost or doubled."""
    rate(provider, 10)
    provider.configure(latency_ms=300)
    with serve(tmp_path, reward_max_in_flight=1, reward_max_queued=2) as (base_url, key, db):
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        def trainer(run: str) -> list[float | None]:
            client = RewardsClient(base_url, api_key=key, sleep=sleep)
            batch = [Item("Hi?", f"{run} answer {i}", metadata={"run": run}) for i in range(2)]
            return client.score({"judge": JUDGE}, batch)

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(trainer, ["first", "second"]))
    assert results == [[1.0, 1.0], [1.0, 1.0]]
    assert waits
    assert all(w >= 1 and w == int(w) for w in waits)  # the server's whole seconds, as sent
    assert [len(stored(db, run)) for run in ("first", "second")] == [2, 2]


def test_openrlhf_recipe_of_the_docs(tmp_path: Path, provider: FakeProvider) -> None:
    """The docs' OpenRLHF setup: REFEREE_AUTH=off on loopback, scorer in the URL's query, and
    the request OpenRLHF 0.11's client sends (no headers; query, prompts, labels)."""
    rate(provider, 10)
    with serve(tmp_path, auth="off") as (base_url, _, db):
        url = f"{base_url}/get_reward?judge={JUDGE}&rubric=helpfulness&run=ppo-1"
        prompt = "<|user|>\nWhat is 2 + 2?</s><|assistant|>\n"
        payload = {"query": [prompt + "4</s>"], "prompts": [prompt], "labels": ["4"]}
        answer = httpx.post(url, json=payload, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rewards"] == [1.0]
    assert answer.json()["scores"] == [1.0]
    [row] = stored(db, "ppo-1")
    assert row.completion == "4</s>"


def test_openrlhf_client_with_the_key_in_its_url(tmp_path: Path, provider: FakeProvider) -> None:
    """OpenRLHF 0.11's own client code (aiohttp, `session.post(url, json=data)`, no headers):
    the key in the URL's credentials reaches /get_reward as HTTP Basic; a wrong key is a 401."""
    aiohttp = pytest.importorskip("aiohttp")
    rate(provider, 10)

    async def post(url: str, data: dict[str, Any]) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=180)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=data) as response,
        ):
            return response.status, await response.json()

    with serve(tmp_path) as (base_url, key, db):
        host = base_url.removeprefix("http://")
        payload = {"query": ["Q: 2+2? 4"], "prompts": ["Q: 2+2? "], "labels": [None]}
        good = asyncio.run(
            post(f"http://referee:{key}@{host}/get_reward?judge={JUDGE}&run=k", payload)
        )
        wrong = asyncio.run(post(f"http://referee:nope@{host}/get_reward?judge={JUDGE}", payload))
    assert good == (200, {"rewards": [1.0], "scores": [1.0], "extra_logs": {"raw_score": [10.0]}})
    assert wrong[0] == 401
    assert [row.completion for row in stored(db, "k")] == ["4"]


class TestVerl:
    async def test_called_as_the_reward_loop_calls_it(
        self, live: tuple[str, str, str], provider: FakeProvider
    ) -> None:
        """verl's reward loop merges reward_kwargs into its keyword call and awaits the result."""
        base_url, key, database_url = live
        rate(provider, 10)
        reward_kwargs = {"base_url": base_url, "api_key": key, "judge": JUDGE, "run": "verl-1"}
        # verl/trainer/ppo/reward.py (0.8.0.dev): get_custom_reward_fn wraps an async
        # function as partial(_call_with_kwargs_async, raw_fn, reward_kwargs), where
        # _call_with_kwargs_async awaits raw_fn(*args, **{**kwargs, **extra_kwargs}).
        assert asyncio.iscoroutinefunction(verl.compute_score)

        async def _call_with_kwargs_async(
            raw_fn: Any, extra_kwargs: Any, *args: Any, **kwargs: Any
        ) -> Any:
            return await raw_fn(*args, **{**kwargs, **extra_kwargs})

        compute_score = partial(_call_with_kwargs_async, verl.compute_score, reward_kwargs)
        # The naive reward manager's call (reward_loop/reward_manager/naive.py), with the
        # extra_info it builds: the dataset's, plus num_turns and rollout_reward_scores.
        result = await compute_score(
            data_source="openai/gsm8k",
            solution_str="Natalia sold 48 + 24 = 72 clips. #### 72",
            ground_truth="72",
            extra_info={
                "split": "train",
                "index": 3,
                "question": "How many clips did Natalia sell altogether?",
                "num_turns": None,
                "rollout_reward_scores": {},
            },
        )
        assert result == {"score": 1.0, "referee_null": 0.0}
        [row] = stored(database_url, "verl-1")
        assert row.score == 1.0
        assert row.prompt == "How many clips did Natalia sell altogether?"
        assert row.completion == "Natalia sold 48 + 24 = 72 clips. #### 72"
        assert row.meta == {
            "data_source": "openai/gsm8k",
            "index": 3,
            "split": "train",
            "run": "verl-1",
        }

    async def test_a_failed_judgment_raises_or_takes_the_named_value(
        self, live: tuple[str, str, str], provider: FakeProvider
    ) -> None:
        """A null is no float: it raises, unless null_score names the value (flagged)."""
        base_url, key, database_url = live
        kwargs = {"base_url": base_url, "api_key": key, "judge": JUDGE, "run": "verl-2"}
        call = {"data_source": "d", "ground_truth": None, "extra_info": {"prompt": "Hi?"}}
        provider.configure(fail_next=["refusal"])
        with pytest.raises(RewardServiceError, match="null_score"):
            await verl.compute_score(solution_str="first", **call, **kwargs)
        provider.configure(fail_next=["refusal"])
        result = await verl.compute_score(solution_str="second", **call, **kwargs, null_score=0.0)
        assert result == {"score": 0.0, "referee_null": 1.0}
        rows = stored(database_url, "verl-2")
        assert sorted((r.completion, r.score, r.status) for r in rows) == [
            ("first", None, "failed"),
            ("second", None, "failed"),
        ]

    async def test_a_conversation_prompt_under_a_named_key(
        self, live: tuple[str, str, str], provider: FakeProvider
    ) -> None:
        """prompt_key names the column; numpy values as verl's batches hold them are read."""
        base_url, key, database_url = live
        rate(provider, 4)
        chat = np.array([{"role": "user", "content": "Hi?", "name": "u1"}], dtype=object)
        result = await verl.compute_score(
            data_source="chat",
            solution_str="Hello!",
            ground_truth=None,
            extra_info={"chat": chat, "index": np.int64(5), "split": np.str_("test")},
            base_url=base_url,
            api_key=key,
            judge=JUDGE,
            run="verl-3",
            prompt_key="chat",
        )
        assert result == {"score": pytest.approx(3 / 9), "referee_null": 0.0}
        [row] = stored(database_url, "verl-3")
        assert row.prompt == [{"role": "user", "content": "Hi?"}]
        assert row.meta == {"data_source": "chat", "index": 5, "split": "test", "run": "verl-3"}

    async def test_no_prompt_is_a_clear_error(self) -> None:
        """Without the question in extra_info the call raises naming the keys it has."""
        with pytest.raises(
            ValueError, match=r"no prompt under 'prompt' or 'question'.*\['index'\]"
        ):
            await verl.compute_score(
                "d", "answer", "gt", {"index": 1}, base_url="http://127.0.0.1:9", judge=JUDGE
            )


@pytest.mark.trl
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_grpo_step_logs_the_rewards_referee_stored(
    live: tuple[str, str, str], provider: FakeProvider, tmp_path: Path
) -> None:
    """One GRPO step on a tiny random model, rewarded by Referee (sync and async adapters):
    every completion's logged reward is the one stored for it, a failed judgment is NaN/null."""
    pytest.importorskip("trl")
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from app.integrations.trl import AsyncRefereeReward, RefereeReward
    from tests.tiny_models import build_causal_lm

    torch.set_num_threads(1)
    base_url, key, database_url = live
    rate(provider, 8)
    provider.configure(fail_next=["refusal"])
    model = build_causal_lm(tmp_path / "model")
    prompts = [[{"role": "user", "content": q}] for q in ("Capital of France?", "Two plus two?")]
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])
    options = {"judge": JUDGE, "rubric": "helpfulness", "api_key": key}
    rewards = {
        "grpo-sync": RefereeReward(base_url, run="grpo-sync", name="referee_sync", **options),
        "grpo-async": AsyncRefereeReward(
            base_url, run="grpo-async", name="referee_async", **options
        ),
    }
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        log_completions=True,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=str(model), reward_funcs=list(rewards.values()), args=args, train_dataset=dataset
    )
    trainer.train()

    import pandas as pd

    logged = pd.read_parquet(tmp_path / "out" / "completions" / "completions_00001.parquet")
    assert len(logged) == 4
    texts = [str(message[0]["content"]) for message in logged["completion"]]
    for run, reward in rewards.items():
        rows = stored(database_url, run)
        assert len(rows) == len(logged)
        assert {r.step for r in rows} == {1}
        from_store = sorted((r.completion[0]["content"], nan_if_none(r.score)) for r in rows)
        from_log = sorted(zip(texts, logged[reward.__name__], strict=True))
        assert [text for text, _ in from_store] == [text for text, _ in from_log]
        assert [s for _, s in from_log] == pytest.approx([s for _, s in from_store], nan_ok=True)
        assert any(s == pytest.approx(7 / 9) for _, s in from_store)
        [history] = [h for h in trainer.state.log_history if "reward" in h]
        assert history[f"rewards/{reward.__name__}/mean"] == pytest.approx(
            float(pd.Series([s for _, s in from_store]).mean())
        )
    nulls = [r for r in stored(database_url, "grpo-sync") if r.score is None]
    assert [r.status for r in nulls] == ["failed"]


def nan_if_none(score: float | None) -> float:
    return math.nan if score is None else score
