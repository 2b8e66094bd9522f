"""``local:<Hugging Face id or folder>``: a transformers model judging in process.

Two kinds of model, told apart by their config:

- A **reward model** (a sequence classifier with one logit, such as the
  Skywork-Reward-V2 family) scores each response to the prompt on its own.
  P(first ≻ second) is ``sigmoid(score_first - score_second)``. It has no
  position to be biased by, so the protocol asks it once per pair
  (:attr:`LocalJudge.position_free`); each response is one sequence.
  Ratings map the raw score through a sigmoid onto the rubric's scale and
  keep the raw score in the call's output.
- A **generative judge** (a causal LM with a chat template) reads the
  pairwise template followed by an instruction to answer with 1 or 2; the
  next-token log-probabilities of those two tokens give a soft label. The
  protocol asks both orders and averages them, as for any judge.

Concurrent calls are gathered into batches of up to ``batch_size``
sequences (:class:`~judges.backends._batching.MicroBatcher`) that run in a
worker thread. The model is loaded on first use, once per process for a
(model, device, dtype). An input longer than the model's context (or
``max_length``) loses the start of its prompt; the call's
``Usage.truncated_tokens`` says how many tokens went.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from judges.backends._batching import MicroBatcher
from judges.backends._local_models import (
    Encoded,
    LocalModel,
    inspect_model,
    pick_device,
    shared_model,
)
from judges.base import Judge, RawAnswer, RawRating
from judges.config import JudgeConfig
from judges.errors import JudgeConfigError, JudgeError, TransientJudgeError
from judges.rubrics import Rubric
from judges.templates import get_template
from judges.types import (
    PairwiseAnswer,
    Position,
    PositionProbabilities,
    RatingAnswer,
    ShownPair,
    Text,
    Usage,
)

CHOICE_INSTRUCTIONS = (
    "The format you were given: answer with one character, 1 if the first response is "
    "better or 2 if the second response is better, and nothing else."
)


@dataclass(frozen=True, slots=True)
class _RewardItem:
    prompt: Text
    response: Text


@dataclass(frozen=True, slots=True)
class _ChoiceItem:
    shown: ShownPair
    question: str | None


@dataclass(frozen=True, slots=True)
class _Scored:
    """A sequence's output (a reward, or the choices' log-probabilities) and its input size."""

    values: tuple[float, ...]
    input_tokens: int
    truncated_tokens: int


_Item = _RewardItem | _ChoiceItem


def sigmoid(x: float) -> float:
    """1 / (1 + e^-x), without overflow for large |x|."""
    return 0.5 * (1.0 + math.tanh(x / 2.0))


class LocalJudge(Judge):
    """``local:<id or path>``: a reward model or a generative judge run by transformers."""

    provider = "local"
    supports_logprobs = True

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__(config)
        # Only the config file is read now (so a missing model fails before any
        # work is queued); the weights load on the first call, in a worker thread.
        self.kind = inspect_model(config.model)
        self.device = pick_device(config.device)
        self._batcher: MicroBatcher[_Item, _Scored] = MicroBatcher(self._run, config.batch_size)

    @property
    def position_free(self) -> bool:
        """A reward model scores each response alone: one pass per pair."""
        return self.kind == "reward"

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        """Score both responses (reward model) or read the choice token (generative judge)."""
        if self.kind == "generative":
            return await self._choose(shown, question)
        if question is not None:
            raise JudgeConfigError(
                "a reward model cannot judge under a question or principle; "
                "use a generative local judge or an API judge for constitutions"
            )
        first, second = await asyncio.gather(
            self._batcher.submit(_RewardItem(shown.prompt, shown.first)),
            self._batcher.submit(_RewardItem(shown.prompt, shown.second)),
        )
        s1, s2 = first.values[0], second.values[0]
        p_first = _preference(s1, s2)
        raw = {
            "scores": [s1, s2],
            "truncated_tokens": [first.truncated_tokens, second.truncated_tokens],
        }
        answer = PairwiseAnswer(
            _position(s1, s2),
            f"reward model scores: first {s1:.4f}, second {s2:.4f}",
            PositionProbabilities(first=p_first, second=1.0 - p_first, tie=0.0),
        )
        return RawAnswer(answer, json.dumps(raw), _usage(first, second))

    async def rate(self, prompt: Text, response: Text, rubric: Rubric) -> RawRating:
        """A reward model's score mapped through a sigmoid onto the rubric's scale.

        A reward model reads no grading criteria: the rubric sets only the
        scale. The raw score is kept in the call's output. Generative local
        judges do not rate.
        """
        if self.kind != "reward":
            raise JudgeConfigError("generative local judges cannot rate single responses")
        scored = await self._batcher.submit(_RewardItem(prompt, response))
        reward = scored.values[0]
        _preference(reward, 0.0)  # a NaN score is a failure, not a rating
        low, high = rubric.scale_min, rubric.scale_max
        score = low + round(sigmoid(reward) * (high - low))
        rationale = (
            f"reward model score {reward:.4f}, mapped through a sigmoid onto {low}-{high} "
            "(a reward model does not read the rubric's criteria)"
        )
        raw = json.dumps({"reward": reward, "truncated_tokens": scored.truncated_tokens})
        return RawRating(RatingAnswer(score, rationale), raw, _usage(scored))

    async def aclose(self) -> None:
        await self._batcher.aclose()

    async def _choose(self, shown: ShownPair, question: str | None) -> RawAnswer:
        scored = await self._batcher.submit(_ChoiceItem(shown, question))
        lp1, lp2 = scored.values
        p_first = _preference(lp1, lp2)  # the two choices' probabilities, normalised
        raw = {"logprobs": {"1": lp1, "2": lp2}, "truncated_tokens": scored.truncated_tokens}
        answer = PairwiseAnswer(
            _position(lp1, lp2),
            f"next-token probabilities: 1 {math.exp(lp1):.4f}, 2 {math.exp(lp2):.4f}",
            PositionProbabilities(first=p_first, second=1.0 - p_first, tie=0.0),
        )
        return RawAnswer(answer, json.dumps(raw), _usage(scored))

    def _run(self, items: list[_Item]) -> Sequence[_Scored | BaseException]:
        """One batch, in a worker thread: encode each item, then forward passes for all."""
        try:
            model = self._model()
        except RuntimeError as exc:  # torch refusing the device or dtype, say
            raise JudgeConfigError(f"cannot load {self.config.model!r}: {exc}") from exc
        limit = model.limit(self.config.max_length)
        encoded: list[Encoded | JudgeError] = []
        for item in items:
            try:
                encoded.append(self._encode(model, item, limit))
            except JudgeError as exc:  # this item alone fails; the rest of the batch runs
                encoded.append(exc)
        ready = [e for e in encoded if isinstance(e, Encoded)]
        outputs = iter(self._forward(model, [e.ids for e in ready]) if ready else [])
        return [
            e if isinstance(e, JudgeError) else _Scored(next(outputs), len(e.ids), e.truncated)
            for e in encoded
        ]

    def _model(self) -> LocalModel:
        return shared_model(self.config.model, self.kind, self.device, self.config.dtype)

    def _encode(self, model: LocalModel, item: _Item, limit: int) -> Encoded:
        if isinstance(item, _RewardItem):
            return model.encode_reward(item.prompt, item.response, limit)
        template = get_template(self.config.template)
        shown, question = item.shown, item.question

        def render(prompt: Text) -> tuple[str, str]:
            system, user = template.render(replace(shown, prompt=prompt), question)
            return system, f"{user}\n\n{CHOICE_INSTRUCTIONS}"

        return model.encode_choice(render, shown.prompt, limit)

    def _forward(self, model: LocalModel, sequences: list[list[int]]) -> list[tuple[float, ...]]:
        import torch

        try:
            if self.kind == "reward":
                return [(score,) for score in model.rewards(sequences)]
            return model.choice_logprobs(sequences)
        except torch.OutOfMemoryError as exc:
            raise TransientJudgeError(
                f"out of memory on {self.device} with {len(sequences)} sequences: "
                "lower the batch_size option"
            ) from exc
        except RuntimeError as exc:  # a failed forward pass is a failed call, stored as such
            raise JudgeError(f"the local model failed: {exc}") from exc


def _preference(first: float, second: float) -> float:
    """sigmoid(first - second); NaN (half precision overflowing, say) fails the call.

    A NaN compares neither greater nor smaller, so it would otherwise pass
    for a tie with a NaN soft label.
    """
    p_first = sigmoid(first - second)
    if math.isnan(p_first):
        raise JudgeError(
            f"the local model's outputs are not a number ({first}, {second}); "
            "if it runs in float16, set the dtype option to bfloat16 or float32"
        )
    return p_first


def _position(first: float, second: float) -> Position:
    if first > second:
        return Position.FIRST
    if second > first:
        return Position.SECOND
    return Position.TIE


def _usage(*scored: _Scored) -> Usage:
    return Usage(
        input_tokens=sum(s.input_tokens for s in scored),
        truncated_tokens=sum(s.truncated_tokens for s in scored),
    )
