"""Request and response bodies of the HTTP API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.labeling.inputs import PairIn
from app.labeling.text_rules import ConstitutionId, JudgeSpec
from app.store.limits import INT32_MAX
from app.store.models import Comparison, JudgeCall


class ErrorBody(BaseModel):
    code: str = Field(
        description="Stable, machine-readable: invalid_input, body_too_large, not_found, …",
        examples=["invalid_input"],
    )
    message: str = Field(description="One line for a person; names the field where one is wrong.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="`field`: the first field at fault (e.g. body.prompt); for validation "
        "errors `errors`: every field with its message; more keys per code.",
    )


class ErrorOut(BaseModel):
    """Every 4xx and 5xx body has this shape, validation and body-parse errors included."""

    error: ErrorBody


class ComparisonCreate(PairIn):
    """A pair to judge, and the judge to judge it with."""

    # Shown in /docs, and the request Schemathesis starts from (tests/test_schemathesis.py).
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prompt": "What is the capital of France?",
                    "response_a": "Paris is the capital of France.",
                    "response_b": "Lyon.",
                    "metadata": {"source": "docs"},
                }
            ]
        }
    )

    judge: JudgeSpec | None = Field(
        None,
        description="provider:model or a named judge; REFEREE_DEFAULT_JUDGE when omitted.",
        examples=["anthropic:claude-sonnet-4-5"],
    )
    force: bool = Field(False, description="Judge again even if a verdict is stored.")
    constitution: ConstitutionId | None = Field(
        None, description="Judge under this constitution's preference questions (its id)."
    )
    principles: int = Field(
        1,
        ge=1,
        le=INT32_MAX,
        description="With a constitution: principles sampled for this pair, averaged.",
    )


class VerdictOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    winner: Literal["a", "b", "tie"]
    confidence: float | None
    position_consistent: bool | None = Field(
        description="False: the two orders disagreed, so the verdict is a position-biased tie."
    )
    soft_preference: float | None = Field(description="P(a preferred), from log-probabilities.")
    rationale: str
    principles: list[dict[str, Any]] | None = Field(
        None, description="Under a constitution: each sampled principle and its own decision."
    )
    length_a: int
    length_b: int
    disagreement: float | None = Field(
        None,
        description="A jury's: 1 - (count of its most common member vote) / (counted votes).",
    )
    created_at: datetime


class JuryVoteOut(BaseModel):
    """One jury member's vote: its verdict in brief, or (winner null) its failure."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    verdict_id: int | None = Field(description="The jury verdict of the run; null if it failed.")
    member: str
    member_spec: str
    winner: Literal["a", "b", "tie"] | None
    confidence: float | None
    position_consistent: bool | None
    soft_preference: float | None
    rationale: str | None
    error_class: str | None
    error_message: str | None
    created_at: datetime


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    verdict_id: int | None
    jury_vote_id: int | None = Field(None, description="A jury member's call: its vote.")
    order: Literal["ab", "ba"] | None = Field(
        description="ab: response_a was shown first; null for a rating call."
    )
    attempt: int
    provider: str
    model: str
    template_version: str
    parameters: dict[str, Any]
    raw_output: str | None
    parsed: dict[str, Any] | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None
    latency_ms: float
    error_class: str | None
    error_message: str | None
    created_at: datetime


class ComparisonOut(BaseModel):
    id: uuid.UUID
    external_id: str | None
    external_ids: list[str] | None = Field(
        None, description="Ids of every line merged into this comparison, when lines repeated it."
    )
    status: Literal["pending", "labeled", "failed"]
    error_class: str | None
    judge: str
    judge_spec: str
    judge_config: dict[str, Any]
    template_version: str
    constitution: str | None = Field(description="id@version:hash of the constitution used.")
    prompt: Any
    response_a: Any
    response_b: Any
    metadata: dict[str, Any] | None
    criteria: str | None = Field(None, description="What it was judged by (a named entry's text).")
    reference: Any = Field(None, description="The reference answer shown to the judge, as given.")
    created_at: datetime
    verdict: VerdictOut | None = Field(description="The current (newest) verdict.")
    previous_verdicts: list[VerdictOut]
    calls: list[CallOut]
    jury_votes: list[JuryVoteOut] = Field(
        default_factory=list, description="A jury's: every member's vote, in every run."
    )
    reused: bool = Field(False, description="True when a stored verdict was returned.")

    @classmethod
    def build(cls, comparison: Comparison, *, reused: bool = False) -> ComparisonOut:
        verdicts = [VerdictOut.model_validate(v) for v in comparison.verdicts]
        return cls(
            id=comparison.id,
            external_id=comparison.external_id,
            external_ids=comparison.external_ids,
            status=comparison.status,
            error_class=comparison.error_class,
            judge=comparison.judge,
            judge_spec=comparison.judge_spec,
            judge_config=comparison.judge_config,
            template_version=comparison.template_version,
            constitution=comparison.constitution,
            prompt=comparison.prompt,
            response_a=comparison.response_a,
            response_b=comparison.response_b,
            metadata=comparison.meta,
            criteria=comparison.criteria,
            reference=comparison.reference,
            created_at=comparison.created_at,
            verdict=verdicts[-1] if verdicts else None,
            previous_verdicts=verdicts[:-1],
            calls=[call_out(c) for c in comparison.calls],
            jury_votes=[JuryVoteOut.model_validate(v) for v in comparison.jury_votes],
            reused=reused,
        )


def call_out(call: JudgeCall) -> CallOut:
    out = CallOut.model_validate(call)
    if call.cost_usd is not None:
        out.cost_usd = float(call.cost_usd)
    return out


class ComparisonPage(BaseModel):
    items: list[ComparisonOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class NamedJudgeOut(BaseModel):
    name: str
    spec: str
    options: dict[str, Any]


class JudgesOut(BaseModel):
    providers: list[str]
    named: list[NamedJudgeOut]
    default: str | None


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
