"""Rewards for training loops: POST /v1/rewards, and POST /get_reward for OpenRLHF."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError

from app.api.errors import error_responses
from app.errors import InvalidInputError, RefereeError
from app.labeling.compare import Labeler
from app.labeling.rewards import (
    RewardBatch,
    RewardItemIn,
    RewardRequest,
    RewardService,
    Scored,
    ScorerIn,
)
from app.labeling.rewards.inputs import ScorerKind, parse_item
from app.labeling.text_rules import CleanStr, JudgeSpec, RubricName

router = APIRouter(tags=["rewards"])


def reward_service(request: Request) -> RewardService:
    """The process's reward service (one capacity pool), made on first use."""
    service: RewardService | None = getattr(request.app.state, "rewards", None)
    if service is None:  # no await since the lookup: one instance per app
        labeler: Labeler = request.app.state.labeler
        service = request.app.state.rewards = RewardService(labeler)
    return service


class RewardItemOut(BaseModel):
    """One item's reward, or why it has none."""

    score: float | None = Field(description="The reward, as in `scores`; null when not scored.")
    status: Literal["scored", "failed", "deadline", "invalid"] = Field(
        description="scored; failed (the judge failed: `reason` is its error class); deadline"
        " (not scored by `timeout_s`); invalid (the item breaks a rule: `reason` names it)."
    )
    reason: str | None = Field(description="Why `score` is null; null when scored.")
    message: str | None = Field(None, description="The failure in words, when there is one.")
    raw_score: float | None = Field(
        description="rubric: the score on the rubric's scale; reward_model: the raw reward;"
        " pairwise: P(completion ≻ reference)."
    )
    passed: bool | None = Field(
        description="Good for KTO: the rubric's threshold, sigmoid(raw) ≥ 0.5, or P > 0.5."
    )
    cached: bool = Field(description="Scored before (same content and scorer): no model call.")
    id: uuid.UUID = Field(description="The stored reward row; a retried request gets the same.")
    rating_id: uuid.UUID | None = Field(description="The rating behind it (rubric, reward_model).")
    comparison_id: uuid.UUID | None = Field(description="The comparison behind it (pairwise).")


class ScorerOut(BaseModel):
    kind: ScorerKind
    judge: str = Field(description="The judge's label (its name or provider:model).")


class RewardsOut(BaseModel):
    """Scores in input order, one per item."""

    scores: list[float | None] = Field(
        description="One reward per item, in input order; null when the item was not scored"
        " (see `items[i].status` and `reason`)."
    )
    items: list[RewardItemOut] = Field(description="Each item's details, in input order.")
    scorer: ScorerOut
    counts: dict[str, int] = Field(
        description="Items per status (scored, failed, deadline, invalid), and `cached`."
    )
    elapsed_ms: float = Field(description="Time the server spent on the request.")

    @classmethod
    def build(cls, batch: RewardBatch) -> RewardsOut:
        items = [
            RewardItemOut(
                score=o.scored.score,
                status=o.scored.status,
                reason=o.scored.reason,
                message=o.scored.message,
                raw_score=o.scored.raw_score,
                passed=o.scored.passed,
                cached=o.scored.cached,
                id=o.row_id,
                rating_id=o.scored.rating_id,
                comparison_id=o.scored.comparison_id,
            )
            for o in batch.items
        ]
        return cls(
            scores=[item.score for item in items],
            items=items,
            scorer=ScorerOut(kind=batch.scorer.kind, judge=batch.scorer.judge_label),
            counts=batch.counts(),
            elapsed_ms=round(batch.elapsed_s * 1000, 3),
        )


_ERRORS = error_responses(
    400,
    413,
    422,
    429,
    503,
    e400="Unknown judge.",
    e413="A text or metadata over its limit (the field is named).",
    e422="An invalid field, too many items, or a reward_model scorer that is not one.",
    e429="The reward queue is full (REFEREE_REWARD_MAX_QUEUED) or the key's daily budget is"
    " spent: retry after Retry-After seconds.",
    e503="The judge is unavailable here (a missing provider key).",
)


@router.post("/v1/rewards", response_model=RewardsOut, responses=_ERRORS)
async def score_rewards(body: RewardRequest, request: Request) -> RewardsOut:
    """Score completions for a training loop, answered in input order.

    One score per item in `scores` (or `null`, with the reason in
    `items[i]`), by the deadline `timeout_s`. The scorer is a rubric judge
    (an LLM rating mapped to [0, 1]), a local reward model (sigmoid of its
    raw score), or pairwise against each item's `reference`
    (P(completion ≻ reference), both orders). Items scored before with the
    same scorer are not judged again. Every item is stored with
    `metadata.run` and `metadata.step`: `referee export kto --run RUN`
    reads them. The same request again (same items, run, step and
    `idempotency_key`) returns and stores the same rows.
    """
    return RewardsOut.build(await reward_service(request).score(body))


class OpenRLHFRequest(BaseModel):
    """What OpenRLHF's remote reward client posts."""

    model_config = ConfigDict(extra="ignore")

    # Plain strings: each sample's own text rules are checked per sample (a NUL in one
    # completion is that sample's failure, not the request's).
    query: list[str] = Field(
        min_length=1, description="Each sample decoded whole: the prompt followed by the response."
    )
    prompts: list[str] = Field(
        min_length=1, description="Each sample's prompt, the start of its `query`."
    )
    labels: list[str | None] | None = Field(
        None, description="Each sample's label: the reference answer of the pairwise scorer."
    )


class OpenRLHFOut(BaseModel):
    """What OpenRLHF reads back: `rewards`, `scores` and `extra_logs`."""

    rewards: list[float] = Field(description="One reward per query, in order.")
    scores: list[float] = Field(description="The same rewards (OpenRLHF logs them as scores).")
    extra_logs: dict[str, list[float]] = Field(
        description="Per-query values OpenRLHF logs beside the reward: `raw_score`."
    )


class RewardsIncompleteError(RefereeError):
    """Some query was not scored: OpenRLHF retries the request (scored items are cached)."""

    status_code = 503
    code = "rewards_incomplete"


class RewardsInvalidError(RefereeError):
    """Every query not scored broke an input rule: a retry cannot score it."""

    status_code = 422
    code = "rewards_invalid"


@router.post(
    "/get_reward",
    response_model=OpenRLHFOut,
    responses=error_responses(
        400,
        413,
        422,
        429,
        503,
        e422="A query breaks an input rule (`details.unscored` names it; the other queries are"
        " scored and stored), or the request is malformed.",
        e503="A query was not scored (failed, deadline): retry.",
    ),
)
async def get_reward(
    body: OpenRLHFRequest,
    request: Request,
    judge: Annotated[JudgeSpec | None, Query(description="Overrides the scorer's judge.")] = None,
    kind: Annotated[ScorerKind | None, Query(description="Overrides the scorer's kind.")] = None,
    rubric: Annotated[RubricName | None, Query(description="Overrides the rubric.")] = None,
    run: Annotated[
        CleanStr | None, Query(max_length=256, description="Stored as metadata.run.")
    ] = None,
    step: Annotated[
        int | None, Query(ge=0, le=2**31 - 1, description="Stored as metadata.step.")
    ] = None,
    timeout_s: Annotated[FiniteFloat | None, Query(gt=0, description="The deadline.")] = None,
) -> OpenRLHFOut:
    """OpenRLHF's remote reward model (`--reward.remote_url http://HOST/get_reward`).

    Takes `{"query", "prompts", "labels"}` and answers `{"rewards", "scores",
    "extra_logs"}` as OpenRLHF's own reward server does. The completion is
    the query after its prompt. The scorer is REFEREE_OPENRLHF_SCORER, with
    the query parameters `judge`, `kind` and `rubric` over it; `run` and
    `step` are stored with each reward. All or nothing: if any query is not
    scored the answer is a 503 naming it, and OpenRLHF's client retries
    (the queries scored meanwhile are not judged again); a 422 when every
    unscored query broke an input rule (a NUL, a lone surrogate, a text over
    the limit), which no retry mends. The other queries are scored and stored.
    """
    service = reward_service(request)
    scorer = _openrlhf_scorer(service, judge=judge, kind=kind, rubric=rubric)
    items = _openrlhf_items(body, run, step)
    batch = await service.score(RewardRequest(scorer=scorer, items=items, timeout_s=timeout_s))
    missing = [(i, o.scored) for i, o in enumerate(batch.items) if o.scored.score is None]
    if missing:
        unscored = [
            {"index": i, "status": s.status, "reason": s.reason, "message": _openrlhf_named(s)}
            for i, s in missing
        ]
        if all(s.status == "invalid" for _, s in missing):
            raise RewardsInvalidError(
                f"{len(missing)} of {len(batch.items)} queries break an input rule: "
                + "; ".join(str(u["message"]) for u in unscored[:3]),
                unscored=unscored,
            )
        raise RewardsIncompleteError(
            f"{len(missing)} of {len(batch.items)} queries not scored; retry", unscored=unscored
        )
    scores = [o.scored.score for o in batch.items if o.scored.score is not None]
    # Every scorer sets raw_score with score (the rubric's scale, the model's raw reward, P).
    raw = [o.scored.raw_score for o in batch.items if o.scored.raw_score is not None]
    return OpenRLHFOut(rewards=scores, scores=scores, extra_logs={"raw_score": raw})


_OPENRLHF_FIELDS = {"prompt": "prompts", "completion": "query", "reference": "labels"}


def _openrlhf_named(scored: Scored) -> str | None:
    """The message with OpenRLHF's field names: ``query[3]``, not ``items[3].completion``."""
    if scored.message is None:
        return None
    return re.sub(
        r"items\[(\d+)\]\.(prompt|completion|reference)",
        lambda m: f"{_OPENRLHF_FIELDS[m[2]]}[{m[1]}]",
        scored.message,
    )


def _openrlhf_scorer(service: RewardService, **overrides: str | None) -> ScorerIn:
    configured: dict[str, Any] = dict(service.settings.openrlhf_scorer or {})
    configured.update({name: value for name, value in overrides.items() if value is not None})
    try:
        return ScorerIn.model_validate(configured)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "scorer"
        raise InvalidInputError(
            f"the /get_reward scorer (REFEREE_OPENRLHF_SCORER and query parameters): {field}:"
            f" {first['msg']}",
            field=field,
        ) from None


def _openrlhf_items(body: OpenRLHFRequest, run: str | None, step: int | None) -> list[RewardItemIn]:
    if len(body.prompts) != len(body.query):
        raise InvalidInputError(
            f"prompts has {len(body.prompts)} entries and query {len(body.query)}: one each",
            field="prompts",
        )
    labels = body.labels or [None] * len(body.query)
    if len(labels) != len(body.query):
        raise InvalidInputError(
            f"labels has {len(labels)} entries and query {len(body.query)}: one each",
            field="labels",
        )
    meta = {k: v for k, v in (("run", run), ("step", step)) if v is not None} or None
    # Each sample checked on its own (text rules; sizes later, with the other items' rules).
    return [
        parse_item(
            {
                "prompt": prompt,
                "completion": query[len(prompt) :] if query.startswith(prompt) else query,
                "reference": label or None,
                "metadata": meta,
            }
        )
        for query, prompt, label in zip(body.query, body.prompts, labels, strict=True)
    ]
