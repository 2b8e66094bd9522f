"""Referee as verl's custom reward function: an async ``compute_score``.

Checked against verl 0.8.0.dev (``verl/experimental/reward_loop/reward_manager/naive.py``
and ``verl/trainer/ppo/reward.py``): the reward loop calls
``await compute_score(data_source=…, solution_str=…, ground_truth=…,
extra_info=…)`` once per response (awaited when the function is a
coroutine function), merging ``custom_reward_function.reward_kwargs`` from
the config into the keyword arguments; with a reward router it adds
``reward_router_address`` and ``reward_model_tokenizer``. The result is a
float, or a dict with ``"score"`` whose other keys become extra reward info.
Configure it with::

    custom_reward_function.path=pkg://app.integrations.verl
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.base_url=http://127.0.0.1:8000
    +custom_reward_function.reward_kwargs.judge=anthropic:claude-sonnet-4-5

verl puts scores in a float tensor, so it has no "no reward": where Referee
answers ``null`` (the judge failed, the deadline passed) this raises, unless
``null_score`` names the value to train on instead; the result's
``referee_null`` is then 1.0, so the substitution shows in verl's metrics.

Importing this module needs only httpx.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from app.integrations._client import RewardItem, RewardsClient, RewardServiceError
from app.integrations._messages import as_completion, as_prompt

__all__ = ["compute_score"]

BASE_URL_ENV = "REFEREE_BASE_URL"
PROMPT_KEYS = ("prompt", "question")
METADATA_KEYS = ("index", "split")

_clients: dict[tuple[str, str | None, float | None], RewardsClient] = {}
_clients_lock = threading.Lock()


def _client(base_url: str, api_key: str | None, deadline_s: float | None) -> RewardsClient:
    """One client per server, key and deadline, shared by every call (one pool per loop)."""
    key = (base_url, api_key, deadline_s)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = RewardsClient(base_url, api_key=api_key, deadline_s=deadline_s)
        return _clients[key]


def _prompt(extra_info: Mapping[str, Any], prompt_key: str | None) -> Any:
    keys = (prompt_key,) if prompt_key else PROMPT_KEYS
    for key in keys:
        if extra_info.get(key) is not None:
            return as_prompt(extra_info[key])
    raise ValueError(
        f"extra_info has no prompt under {' or '.join(map(repr, keys))} "
        f"(it has {sorted(extra_info)}): add the question to extra_info in the data "
        "preprocessing, or name its key with reward_kwargs.prompt_key"
    )


def _metadata(data_source: Any, extra_info: Mapping[str, Any], run: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"data_source": str(data_source)}
    for key in METADATA_KEYS:
        value: Any = extra_info.get(key)
        if hasattr(value, "item"):  # a numpy scalar, as verl's batches hold them
            value = value.item()
        if isinstance(value, str | int | float | bool):
            metadata[key] = value
    if run is not None:
        metadata["run"] = run
    return metadata


async def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    judge: str | None = None,
    rubric: str | None = None,
    api_key: str | None = None,
    scorer: Mapping[str, Any] | None = None,
    run: str | None = None,
    prompt_key: str | None = None,
    deadline_s: float | None = None,
    null_score: float | None = None,
    **_verl_kwargs: Any,
) -> dict[str, float]:
    """Score one response with Referee; ``{"score": float, "referee_null": 0.0 | 1.0}``.

    The prompt comes from ``extra_info["prompt"]`` or ``extra_info["question"]``
    (or ``prompt_key``); ``ground_truth`` is sent as the reference answer.
    ``base_url`` defaults to ``REFEREE_BASE_URL``, ``api_key`` to
    ``REFEREE_API_KEY``. verl's reward-router keywords are accepted and unused.
    """
    base_url = base_url or os.environ.get(BASE_URL_ENV)
    if not base_url or not judge:
        raise ValueError(
            "set custom_reward_function.reward_kwargs.base_url (or REFEREE_BASE_URL) "
            "and custom_reward_function.reward_kwargs.judge"
        )
    info = extra_info or {}
    full_scorer: dict[str, Any] = {"judge": judge, **({"rubric": rubric} if rubric else {})}
    full_scorer.update(scorer or {})
    item = RewardItem(
        prompt=_prompt(info, prompt_key),
        completion=solution_str,
        reference=None if ground_truth is None else as_completion(ground_truth),
        metadata=_metadata(data_source, info, run),
    )
    [score] = await _client(base_url, api_key, deadline_s).ascore(full_scorer, [item])
    if score is not None:
        return {"score": score, "referee_null": 0.0}
    if null_score is None:
        raise RewardServiceError(
            "Referee stored no score for this response (the judge failed or the deadline "
            "passed); set custom_reward_function.reward_kwargs.null_score to train on a "
            "fixed value instead"
        )
    return {"score": float(null_score), "referee_null": 1.0}
