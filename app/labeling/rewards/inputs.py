"""What a reward request carries: the items, the scorer, the deadline; checked before any call.

Only the request's own structure refuses it (422): a body that is not an
object, ``items`` not a list or over REFEREE_MAX_REWARD_ITEMS, a bad scorer
or deadline. An item that breaks a rule of its own (a NUL character or a
lone surrogate in a text, a text over the size limit, bad metadata, a
missing field, an empty completion) is not scored and gets ``null`` with
status ``invalid`` and a message naming its field, and the items beside it
are scored: a trainer needs one answer per completion, in order, and one
bad completion must not cost the whole step.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

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
# What is kept of an invalid item's text (escaped so that any database stores it).
INVALID_KEPT_CHARS = 2000
# Errors of the union branches a value did not take (a string is not a message list).
_BRANCH_ERRORS = {"string_type", "model_type", "model_attributes_type", "list_type", "dict_type"}
_METADATA = TypeAdapter(Metadata)


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
    # (field, message) when the item failed its own input rules; see `invalid`.
    _invalid: tuple[str, str] | None = PrivateAttr(None)
    # `stored()`, made once: the key, the rating row and the reward row all use it.
    _stored: dict[str, Any] | None = PrivateAttr(None)

    @classmethod
    def invalid(cls, value: Any, error: ValidationError) -> RewardItemIn:
        """A stand-in for an item that failed validation: its texts escaped, its run and step
        kept when they are valid, and the first real error (not a union branch's) kept."""
        errors = error.errors(include_url=False)
        # The error of the branch the value took: not a type mismatch, and the deepest.
        real = [e for e in errors if e["type"] not in _BRANCH_ERRORS] or errors
        first = max(real, key=lambda e: len(e["loc"]))
        field = ".".join(str(part) for part in first["loc"] if not _is_branch_tag(part))
        raw = value if isinstance(value, dict) else {"item": value}
        item = cls.model_construct(
            prompt=_escaped(raw.get("prompt")),
            completion=_escaped(raw.get("completion", raw.get("item"))),
            reference=None,
            metadata=_run_and_step_only(raw.get("metadata")),
        )
        item._invalid = (field, str(first["msg"]))
        return item

    def stored(self) -> dict[str, Any]:
        """The texts as stored (JSON); the same dict on every call, never to be changed."""
        if self._stored is None:
            self._stored = self.model_dump(
                include={"prompt", "completion", "reference"}, mode="json"
            )
        return self._stored

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
    items: list[LenientItem] = Field(
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


def _is_branch_tag(part: str | int) -> bool:
    """pydantic's name of a union branch in an error location (``list[MessageIn]``)."""
    return isinstance(part, str) and ("[" in part or part == "MessageIn")


def _escaped(value: Any) -> str:
    """Any JSON value as text any database stores: NUL and lone surrogates escaped, cut short."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text if len(text) <= INVALID_KEPT_CHARS else text[:INVALID_KEPT_CHARS] + "…"


def _run_and_step_only(metadata: Any) -> dict[str, Any] | None:
    """``run`` and ``step`` of an invalid item's metadata, if they are valid themselves."""
    if not isinstance(metadata, dict):
        return None
    kept = {k: metadata[k] for k in ("run", "step") if k in metadata}
    try:
        checked = RewardItemIn(prompt="-", completion="-", metadata=_METADATA.validate_python(kept))
        checked.run_and_step(0)
    except (ValidationError, RefereeError):
        return None
    return kept or None


def _item_or_invalid(value: Any, handler: ValidatorFunctionWrapHandler) -> RewardItemIn:
    try:
        item: RewardItemIn = handler(value)
    except ValidationError as error:
        return RewardItemIn.invalid(value, error)
    return item


# An item that fails validation does not refuse the request: it becomes that item's null.
LenientItem = Annotated[RewardItemIn, WrapValidator(_item_or_invalid)]


def parse_item(value: Any) -> RewardItemIn:
    """One item, valid or a stand-in carrying why not (see `RewardItemIn.invalid`)."""
    try:
        return RewardItemIn.model_validate(value)
    except ValidationError as error:
        return RewardItemIn.invalid(value, error)


def check_request(request: RewardRequest, settings: Settings) -> None:
    """Bounds on the whole request (422/413), before anything is looked up or called.

    Each item's own rules are `item_problem`'s: a broken item is that item's null."""
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


def _texts(item: RewardItemIn, index: int) -> dict[str, Text]:
    texts = {
        f"items[{index}].prompt": to_text(item.prompt),
        f"items[{index}].completion": to_text(item.completion),
    }
    if item.reference is not None:
        texts[f"items[{index}].reference"] = to_text(item.reference)
    return texts


def item_problem(
    item: RewardItemIn, index: int, settings: Settings, kind: ScorerKind
) -> RefereeError | None:
    """Why this item cannot be judged, naming ``items[index].FIELD``, or None.

    Its validation (text rules, types, fields), the pairwise scorer's
    reference, run and step, sizes, metadata, and an empty text (by
    REFEREE_EMPTY_TEXTS). A policy emits a NUL or an empty completion now and
    then; the trainer gets ``null`` for that one, not a refused batch.
    """
    if item._invalid is not None:
        field, message = item._invalid
        where = f"items[{index}]" + (f".{field}" if field else "")
        return InvalidInputError(f"{where}: {message}", field=where)
    try:
        if kind == "pairwise" and item.reference is None:
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
        screen_empty(_texts(item, index), settings.empty_texts)
    except RefereeError as exc:
        return exc
    return None
