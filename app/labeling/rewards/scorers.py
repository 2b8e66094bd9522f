"""The three scorers: a rubric rating, a local reward model, and pairwise against a reference.

Each scores through an existing use case's rules and stores like it: rubric
and reward-model scores are ratings (keyed as ``POST /v1/ratings`` keys
them), pairwise scores are comparisons of the completion (``a``) with the
reference (``b``). So the same content and scorer are scored once, whoever
asked, and every call is stored with its cost.

A scorer maps the stored label onto a reward:

- rubric: ``(score - scale_min) / (scale_max - scale_min)``, in [0, 1];
- reward model: the raw reward from the model's output, and its sigmoid;
- pairwise: P(completion ≻ reference): the soft preference averaged over
  both orders where the judge gives probabilities, else each order's vote
  as 1 / 0.5 / 0, averaged.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from statistics import fmean
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInputError, JudgeFailedError, RefereeError
from app.keys import label_key
from app.labeling.calls import call_row
from app.labeling.compare import Labeler
from app.labeling.inputs import PairIn, to_text
from app.labeling.rate import ResponseItemIn, outcome_values, rating_key, rating_values
from app.labeling.rewards.inputs import RewardItemIn, ScorerIn, ScorerKind
from app.labeling.rewards.writer import GroupWriter
from app.labeling.screening import rule_key, screen_pair
from app.store import ratings, rewards
from app.store.models import Comparison, Rating
from judges import Order, Position, Rubric, rate_response, winner_from_position
from judges.base import Judge
from judges.jury import PairJudgeConfig

Status = Literal["scored", "failed", "deadline", "invalid"]
RatingWriter = GroupWriter[rewards.RatingRun, tuple[uuid.UUID, bool]]


def sigmoid(x: float) -> float:
    """1 / (1 + e^-x), without overflow for large |x|."""
    import math

    return 0.5 * (1.0 + math.tanh(x / 2.0))


@dataclass(frozen=True, slots=True)
class Scored:
    """One item's reward, or why it has none."""

    status: Status
    score: float | None = None
    raw_score: float | None = None
    passed: bool | None = None
    reason: str | None = None
    message: str | None = None
    rating_id: uuid.UUID | None = None
    comparison_id: uuid.UUID | None = None
    cached: bool = False

    @classmethod
    def refused(cls, error: RefereeError, status: Status = "invalid") -> Scored:
        reason = str(error.details.get("error_class") or error.code)
        return cls(status, reason=reason, message=error.message)


DEADLINE = Scored("deadline", reason="deadline", message="not scored before the deadline")


class Scorer(ABC):
    """A scorer resolved for one request: its judge is checked before any item is."""

    kind: ScorerKind

    def __init__(self, labeler: Labeler, spec: ScorerIn, writer: RatingWriter) -> None:
        self.labeler = labeler
        self.spec = spec
        self.writer = writer

    @property
    @abstractmethod
    def judge_label(self) -> str: ...

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What keys the scores: the judge configuration and the scorer's own options.

        The same dict for every item of a request: read it, never change it."""

    @abstractmethod
    def holding(self) -> AbstractAsyncContextManager[None]:
        """Keep the judge open while calls on it are in flight."""

    @abstractmethod
    def key(self, item: RewardItemIn) -> str:
        """The stored label's key for this item; raises a RefereeError for an item refused."""

    @abstractmethod
    async def lookup(self, session: AsyncSession, keys: list[str]) -> dict[str, Scored]:
        """Items scored before (by any request), by key: no call for them."""

    @abstractmethod
    async def work(
        self, item: RewardItemIn, key: str, slot: AbstractAsyncContextManager[None]
    ) -> Scored:
        """Score one item, paying for calls only inside ``slot``; store it; never raise."""


class RatingScorer(Scorer):
    """rubric and reward_model: a rating of the completion, mapped onto a reward."""

    def __init__(self, labeler: Labeler, spec: ScorerIn, writer: RatingWriter) -> None:
        super().__init__(labeler, spec, writer)
        self.kind = spec.kind
        try:
            self.rubric: Rubric = spec.rubric_choice().resolve()
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, field="scorer.rubric") from None
        self.config = labeler.resolve(spec.judge)
        self.judge: Judge = labeler.judge_for(self.config)
        if self.kind == "reward_model" and not (
            self.judge.provider == "local" and self.judge.position_free
        ):
            raise InvalidInputError(
                f"scorer.judge {self.config.label!r} is not a local reward model;"
                " use kind rubric (an LLM rating) or pairwise",
                field="scorer.judge",
            )
        # Made once per request, not per item: the judge and rubric are fixed for it.
        self._fingerprint = {
            "kind": self.kind,
            "judge": self.config.fingerprint(),
            "rubric": self.rubric.version,
            "threshold": self.rubric.threshold,
            "output": self.spec.output if self.kind == "reward_model" else None,
        }

    @property
    def judge_label(self) -> str:
        return self.config.label

    def fingerprint(self) -> dict[str, Any]:
        return self._fingerprint

    def holding(self) -> AbstractAsyncContextManager[None]:
        return self.labeler.holding(self.judge)

    def _rated(self, item: RewardItemIn) -> ResponseItemIn:
        # The item's fields are validated already, with the same types: not again.
        return ResponseItemIn.model_construct(
            prompt=item.prompt, response=item.completion, metadata=item.metadata
        )

    def key(self, item: RewardItemIn) -> str:
        stored = item.stored()
        rated = {"prompt": stored["prompt"], "response": stored["completion"]}
        return rating_key(rated, self.config, self.rubric)

    async def lookup(self, session: AsyncSession, keys: list[str]) -> dict[str, Scored]:
        found = await rewards.rated(session, keys)
        return {key: replace(self.from_rating(row), cached=True) for key, row in found.items()}

    async def work(
        self, item: RewardItemIn, key: str, slot: AbstractAsyncContextManager[None]
    ) -> Scored:
        async with slot:
            outcome = await rate_response(
                self.judge, to_text(item.prompt), to_text(item.completion), self.rubric
            )
        values = rating_values(self._rated(item), self.config, self.rubric, key)
        calls = [call_row(self.config, call) for call in outcome.calls]
        run = rewards.RatingRun(values, outcome_values(outcome), calls)
        rating_id, taken = await self.writer.run(run)
        if taken:  # another run scored it meanwhile: its score stands
            async with self.labeler.db.transaction() as session:
                stored = await ratings.get(session, rating_id)
            assert stored is not None
            return self.from_rating(stored)
        if outcome.rating is None:
            return Scored(
                "failed",
                reason=outcome.error_class,
                message=outcome.error_message,
                rating_id=rating_id,
            )
        raw = _reward_in(outcome.calls[-1].raw_output) if self.kind == "reward_model" else None
        return self._mapped(outcome.rating.score, outcome.rating.passed, raw, rating_id)

    def from_rating(self, rating: Rating) -> Scored:
        assert rating.score is not None
        assert rating.passed is not None
        raw = _reward_of(rating) if self.kind == "reward_model" else None
        return self._mapped(rating.score, rating.passed, raw, rating.id)

    def _mapped(self, score: int, passed: bool, raw: float | None, rating_id: uuid.UUID) -> Scored:
        """The reward of a rating: on [0, 1] by the rubric's scale, or the reward model's."""
        if self.kind == "reward_model":
            if raw is None:
                return Scored(
                    "failed",
                    reason="no_reward",
                    message="the rating has no reward model output",
                    rating_id=rating_id,
                )
            squashed = sigmoid(raw)
            value = squashed if self.spec.output == "sigmoid" else raw
            return Scored("scored", value, raw, squashed >= 0.5, rating_id=rating_id)
        low, high = self.rubric.scale_min, self.rubric.scale_max
        value = (score - low) / (high - low) if high != low else 1.0
        return Scored("scored", value, float(score), passed, rating_id=rating_id)


def _reward_of(rating: Rating) -> float | None:
    """The raw reward a local reward model wrote in its last successful call's output."""
    for call in reversed(rating.calls):
        if call.error_class is None and call.raw_output:
            return _reward_in(call.raw_output)
    return None


def _reward_in(raw_output: str | None) -> float | None:
    try:
        value = json.loads(raw_output or "").get("reward")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


class PairwiseScorer(Scorer):
    """P(completion ≻ reference), through the pairwise use case (both orders, stored)."""

    kind: ScorerKind = "pairwise"

    def __init__(self, labeler: Labeler, spec: ScorerIn, writer: RatingWriter) -> None:
        super().__init__(labeler, spec, writer)
        self.config: PairJudgeConfig = labeler.resolve_pairwise(spec.judge)
        self.judge = labeler.pairwise_judge_for(self.config)

    @property
    def judge_label(self) -> str:
        return self.config.label

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": self.kind, "judge": self.config.fingerprint()}

    def holding(self) -> AbstractAsyncContextManager[None]:
        return self.labeler.holding(self.judge)

    def _pair(self, item: RewardItemIn) -> PairIn:
        return PairIn(
            prompt=item.prompt,
            response_a=item.completion,
            response_b=item.reference,
            metadata=item.metadata,
        )

    def key(self, item: RewardItemIn) -> str:
        pair = self._pair(item)
        stored = pair.stored()
        if screen_pair(pair, self.labeler.text_policy()) == "tie":
            return rule_key(stored, self.config, None)
        return label_key(stored, self.config, None)

    async def lookup(self, session: AsyncSession, keys: list[str]) -> dict[str, Scored]:
        found = await rewards.judged(session, keys)
        scored = {key: _from_comparison(row) for key, row in found.items() if row.verdicts}
        return {key: replace(value, cached=True) for key, value in scored.items()}

    async def work(
        self, item: RewardItemIn, key: str, slot: AbstractAsyncContextManager[None]
    ) -> Scored:
        try:
            async with slot:
                result = await self.labeler.compare(self._pair(item), self.spec.judge)
        except JudgeFailedError as exc:
            return Scored.refused(exc, "failed")
        return _from_comparison(result.comparison)


def _from_comparison(comparison: Comparison) -> Scored:
    verdict = comparison.verdicts[-1]
    if verdict.soft_preference is not None:
        p = verdict.soft_preference
    else:
        votes = [
            winner_from_position(Order(call.order), Position(call.parsed["position"]))
            for call in comparison.calls
            if call.verdict_id == verdict.id and call.order and call.parsed
        ]
        value = {"a": 1.0, "tie": 0.5, "b": 0.0}
        p = fmean(value[v.value] for v in votes) if votes else value[verdict.winner]
    return Scored("scored", p, p, p > 0.5, comparison_id=comparison.id)


def build_scorer(labeler: Labeler, spec: ScorerIn, writer: RatingWriter) -> Scorer:
    """The scorer a request names; 400/422/503 for a judge that is unknown or refused."""
    if spec.kind == "pairwise":
        return PairwiseScorer(labeler, spec, writer)
    return RatingScorer(labeler, spec, writer)
