"""What a reward request carries: the items, the scorer, the deadline; checked before any call.

Shape errors (a missing completion, a wrong type) refuse the request with a
422 naming the field. An item that parses but cannot be judged (a text over
the size limit, an empty completion) is not scored and gets ``null`` with
its reason, and the items beside it are scored: a trainer needs one answer
per completion, in order.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from app.errors import InvalidInputError, RefereeError, TextTooLargeError
from app.labeling.inputs import Prompt, Response, check_text_sizes, to_text
from app.labeling.limits import check_metadata
from app.labeling.rate import RubricChoice
from app.labeling.screening import screen_empty
from app.labeling.text_rules import CleanStr, IdempotencyKey, Int32, JudgeSpec, Metadata, RubricName
from app.settings import Settings
from judges.types import Text

ScorerKind = Literal["rubric", "reward_model", "pairwise"]
RUN_MAX_CHARS = 256
STEP_MAX = 2**31 - 1


class RewardItemIn(BaseModel):
    """One completion to score."""

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    completion: Response = Field(description="The policy's completion: a string or messages.")
    reference: Response | None = Field(
        None, description="A reference answer; required by the pairwise scorer."
    )
    metadata: Metadata | None = Field(
        None,
        description="Stored with the reward. `run` (string) and `step` (integer ≥ 0) name the"
        " training run and step: `referee export kto|sft --run RUN` reads them.",
    )

    def stored(self) -> dict[str, Any]:
        return self.model_dump(include={"prompt", "completion", "reference"}, mode="json")

    def run_and_step(self, index: int) -> tuple[str | None, int | None]:
        """``metadata.run`` and ``metadata.step``, checked; 422 naming the item's field."""
        meta = self.metadata or {}
        run, step = meta.get("run"), meta.get("step")
        if run is not None and not (isinstance(run, str) and 0 < len(run) <= RUN_MAX_CHARS):
            raise InvalidInputError(
                f"items[{index}].metadata.run must be a string of 1 to {RUN_MAX_CHARS} characters",
                field=f"items[{index}].metadata.run",
            )
        valid_step = isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= STEP_MAX
        if step is not None and not valid_step:
            raise InvalidInputError(
                f"items[{index}].metadata.step must be an integer from 0 to {STEP_MAX}",
                field=f"items[{index}].metadata.step",
            )
        return run, step


class ScorerIn(BaseModel):
    """How to score: the judge, and the kind of score asked of it."""

    model_config = ConfigDict(extra="forbid")

    judge: JudgeSpec | None = Field(
        None,
        description="provider:model or a named judge (a jury for pairwise);"
        " REFEREE_DEFAULT_JUDGE when omitted.",
        examples=["anthropic:claude-sonnet-4-6"],
    )
    kind: ScorerKind = Field(
        "rubric",
        description="rubric: an LLM rating mapped to [0, 1] by the rubric's scale;"
        " reward_model: a local reward model's score, sigmoid (or raw, see `output`);"
        " pairwise: P(completion ≻ reference) from the both-orders protocol.",
    )
    rubric: RubricName | None = Field(
        None, description="rubric kind: helpfulness (default) or harmlessness."
    )
    rubric_text: CleanStr | None = Field(None, description="rubric kind: custom criteria.")
    scale_min: Int32 | None = Field(None, description="rubric kind: lowest score (default 1).")
    scale_max: Int32 | None = Field(None, description="rubric kind: highest score (default 10).")
    threshold: FiniteFloat | None = Field(
        None, description="rubric kind: scores at or above are good (`passed`; default 7)."
    )
    output: Literal["sigmoid", "raw"] = Field(
        "sigmoid",
        description="reward_model kind: `scores` carries sigmoid(raw) in [0, 1], or the raw"
        " reward. Both are in `items[].raw_score` / `items[].score`.",
    )

    def rubric_choice(self) -> RubricChoice:
        return RubricChoice(
            name=self.rubric,
            text=self.rubric_text,
            scale_min=self.scale_min,
            scale_max=self.scale_max,
            threshold=self.threshold,
        )


class RewardRequest(BaseModel):
    """A batch of completions to score, answered in input order."""

    model_config = ConfigDict(extra="forbid")

    scorer: ScorerIn
    items: list[RewardItemIn] = Field(
        description="The completions, at most REFEREE_MAX_REWARD_ITEMS.", min_length=1
    )
    timeout_s: FiniteFloat | None = Field(
        None,
        gt=0,
        description="Deadline for the whole request, in seconds: items not scored by then are"
        " null with reason `deadline` (REFEREE_REWARD_TIMEOUT_S when omitted, capped at"
        " REFEREE_REWARD_MAX_TIMEOUT_S).",
    )
    idempotency_key: IdempotencyKey | None = Field(
        None,
        description="Names this request: a retry with the same key and items finds the same"
        " stored rows. Without it, items are keyed by scorer, run, step and content.",
    )


def check_request(request: RewardRequest, settings: Settings) -> None:
    """Bounds on the whole request (422/413), before anything is looked up or called."""
    if len(request.items) > settings.max_reward_items:
        raise InvalidInputError(
            f"{len(request.items)} items; at most {settings.max_reward_items} per request"
            " (REFEREE_MAX_REWARD_ITEMS): split the batch",
            field="items",
        )
    text = request.scorer.rubric_text
    if text is not None and len(text) > settings.max_rubric_chars:
        raise TextTooLargeError(
            f"scorer.rubric_text has {len(text)} characters; the limit is "
            f"{settings.max_rubric_chars} (REFEREE_MAX_RUBRIC_CHARS)",
            field="scorer.rubric_text",
        )
    for index, item in enumerate(request.items):
        if request.scorer.kind == "pairwise" and item.reference is None:
            raise InvalidInputError(
                f"items[{index}].reference is required by the pairwise scorer",
                field=f"items[{index}].reference",
            )
        item.run_and_step(index)
        check_text_sizes(_texts(item, index), settings.max_text_chars)
        try:
            check_metadata(item.metadata, settings.max_metadata_kb)
        except TextTooLargeError as exc:
            raise TextTooLargeError(
                f"items[{index}].metadata: {exc.message}", field=f"items[{index}].metadata"
            ) from None


def _texts(item: RewardItemIn, index: int) -> dict[str, Text]:
    texts = {
        f"items[{index}].prompt": to_text(item.prompt),
        f"items[{index}].completion": to_text(item.completion),
    }
    if item.reference is not None:
        texts[f"items[{index}].reference"] = to_text(item.reference)
    return texts


def item_problem(item: RewardItemIn, index: int, settings: Settings) -> RefereeError | None:
    """Why this item cannot be judged (an empty text, by REFEREE_EMPTY_TEXTS), or None.

    A policy emits empty completions now and then; the trainer gets ``null``
    for that one, not a refused batch.
    """
    try:
        screen_empty(_texts(item, index), settings.empty_texts)
    except InvalidInputError as exc:
        return exc
    return None
