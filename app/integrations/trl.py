"""Referee as a TRL reward function: ``GRPOTrainer(reward_funcs=RefereeReward(...))``.

Checked against TRL 1.16 (``trl/trainer/grpo_trainer.py``, ``_calculate_rewards``):
a reward function is called with the keyword arguments ``prompts``,
``completions``, ``completion_ids``, every other dataset column as a list,
and ``trainer_state`` (plus ``log_extra`` / ``log_metric`` in GRPO). It
returns one float per completion, or ``None`` where it has no reward (TRL
turns it into NaN and leaves that completion out of the group statistics).
TRL names the function in its logs by ``__name__``; it runs a callable whose
``__call__`` is ``async def`` on its own event loop, concurrently with the
other reward functions. ``OnlineDPOTrainer`` (``trl.experimental``) calls
reward functions the same way but only synchronously.

Importing this module needs only httpx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from app.integrations._client import RetryPolicy, RewardItem, RewardsClient
from app.integrations._messages import as_completion, as_prompt

__all__ = ["AsyncRefereeReward", "RefereeReward"]


def _default_name(judge: str) -> str:
    return "referee_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", judge).strip("_")


class _RefereeRewardBase:
    """What the sync and async reward functions share: the request they build."""

    __name__: str

    def __init__(
        self,
        base_url: str,
        *,
        judge: str,
        rubric: str | None = None,
        api_key: str | None = None,
        scorer: Mapping[str, Any] | None = None,
        run: str | None = None,
        reference_column: str | None = "reference",
        metadata_columns: Sequence[str] = (),
        deadline_s: float | None = None,
        batch_size: int = 64,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        name: str | None = None,
    ) -> None:
        """
        Args:
            base_url: The Referee server, e.g. ``http://127.0.0.1:8000``.
            judge: The judge spec (``anthropic:claude-sonnet-4-5``, a named judge, …).
            rubric: The rubric the judge grades against (a built-in name).
            api_key: A key with the ``label`` scope; defaults to ``REFEREE_API_KEY``.
            scorer: More scorer fields of ``POST /v1/rewards``, sent as given.
            run: Stored with every reward as ``metadata.run`` (``referee export kto --run``).
            reference_column: The dataset column holding a reference answer, if present.
            metadata_columns: Dataset columns stored as each item's metadata.
            deadline_s: The request deadline (``timeout_s``): late items score None.
            batch_size: Items per request.
            max_concurrency: Requests in flight at once.
            retry: How long to keep retrying a busy or unreachable server.
            name: The name TRL logs the reward under (default ``referee_<judge>``).
        """
        self.scorer: dict[str, Any] = {"judge": judge}
        if rubric is not None:
            self.scorer["rubric"] = rubric
        self.scorer.update(scorer or {})
        self.run = run
        self.reference_column = reference_column
        self.metadata_columns = tuple(metadata_columns)
        self.client = RewardsClient(
            base_url,
            api_key=api_key,
            deadline_s=deadline_s,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            retry=retry or RetryPolicy(),
        )
        self.__name__ = name or _default_name(judge)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.base_url!r}, scorer={self.scorer!r})"

    def items(
        self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Any]
    ) -> list[RewardItem]:
        """The request items for one call of TRL's: prompt, completion, reference, metadata."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        references = columns.get(self.reference_column) if self.reference_column else None
        step = _step(columns.get("trainer_state"))
        items = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            metadata = {c: columns[c][i] for c in self.metadata_columns if c in columns}
            if self.run is not None:
                metadata["run"] = self.run
            if step is not None:
                metadata["step"] = step
            reference = references[i] if references is not None else None
            if reference is not None:
                reference = as_completion(reference)
            items.append(
                RewardItem(
                    prompt=as_prompt(prompt),
                    completion=as_completion(completion),
                    reference=reference,
                    metadata=metadata,
                )
            )
        return items


def _step(trainer_state: Any) -> int | None:
    """The optimizer step the rewards feed, numbered as TRL's logs number it (from 1).

    TRL scores a generation batch before the step it trains, while
    ``global_step`` still counts the steps already done.
    """
    global_step = getattr(trainer_state, "global_step", None)
    return global_step + 1 if isinstance(global_step, int) else None


def _log_nulls(columns: Mapping[str, Any], scores: list[float | None]) -> None:
    """GRPO's ``log_metric``: the share of completions Referee gave no score."""
    log_metric = columns.get("log_metric")
    if callable(log_metric) and scores:
        log_metric("referee/null_fraction", sum(s is None for s in scores) / len(scores))


class RefereeReward(_RefereeRewardBase):
    """A TRL reward function scoring each completion with a Referee judge.

    ``GRPOTrainer(..., reward_funcs=RefereeReward("http://127.0.0.1:8000",
    judge="anthropic:claude-sonnet-4-5", rubric="helpfulness", run="grpo-1"))``.
    Returns one float per completion, ``None`` where Referee stored a failure
    or the deadline passed. Every reward is stored with ``run`` and the step.
    """

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        scores = self.client.score(self.scorer, self.items(prompts, completions, columns))
        _log_nulls(columns, scores)
        return scores


class AsyncRefereeReward(_RefereeRewardBase):
    """:class:`RefereeReward` with an ``async`` ``__call__``: TRL awaits it on its own loop,
    concurrently with the other reward functions (GRPOTrainer only)."""

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        scores = await self.client.ascore(self.scorer, self.items(prompts, completions, columns))
        _log_nulls(columns, scores)
        return scores
