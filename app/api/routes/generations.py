"""/v1/generations: sample candidates from a policy; read generations and their candidates."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from app.api.deps import LabelerDep
from app.api.errors import error_responses
from app.errors import NotFoundError
from app.labeling.rounds import generation_requests
from app.labeling.rounds.generation_jobs import GenerationPromptIn, GenerationSpec
from app.labeling.text_rules import BatchName, JudgeSpec
from app.store.limits import INT32_MAX
from app.store.models_generation import Generation

router = APIRouter(prefix="/v1/generations", tags=["generations"])

MAX_PAGE = 1000


class SamplingCreate(BaseModel):
    """Prompts to sample ``n`` answers each from a policy, and how to sample them.

    The body of ``POST /v1/generations``, and the sampling half of ``POST /v1/rounds``.
    """

    model_config = ConfigDict(extra="forbid")

    policy: JudgeSpec = Field(
        description="provider:model: openai:<model> (the server's OPENAI_BASE_URL, e.g. vLLM), "
        "anthropic:<model>, or local:<causal LM> where the operator allows it.",
        examples=["openai:gpt-4o-mini"],
    )
    prompts: list[GenerationPromptIn] = Field(
        min_length=1, description="Up to REFEREE_MAX_GENERATION_PROMPTS prompts."
    )
    n: int = Field(
        4, ge=1, le=INT32_MAX, description="Samples per prompt (≤ REFEREE_MAX_GENERATION_N)."
    )
    checkpoint: BatchName | None = Field(None, description="Your label for the policy's weights.")
    temperature: FiniteFloat | None = Field(1.0, ge=0, le=2)
    top_p: FiniteFloat | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(
        1024, ge=1, le=INT32_MAX, description="Per sample (≤ REFEREE_MAX_GENERATION_TOKENS)."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=INT32_MAX // 2,
        description="Base seed; a request's is this + its first index.",
    )


class GenerationCreate(SamplingCreate):
    """Prompts to sample ``n`` answers each from a policy, and how to sample them."""

    name: BatchName | None = Field(
        None, description="The generation's name; default: a hash of the prompts and settings."
    )


class CandidateOut(BaseModel):
    id: uuid.UUID
    text: str
    count: int = Field(description="Samples that produced this text.")
    sample_indexes: list[int]


class FailedSampleOut(BaseModel):
    sample_index: int
    error_class: str | None
    error_message: str | None


class SampleOut(BaseModel):
    """One sample's provenance."""

    sample_index: int
    status: str
    candidate_id: uuid.UUID | None
    request_id: str | None
    seed: int | None
    model: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    latency_ms: float | None
    attempts: int
    error_class: str | None


class PromptOut(BaseModel):
    prompt_id: uuid.UUID
    prompt_key: str
    id: str | None = Field(description="Your identifier for the prompt.")
    prompt: Any
    metadata: dict[str, Any] | None
    candidates: list[CandidateOut]
    failed: list[FailedSampleOut]
    pending: int
    samples: list[SampleOut]


class GenerationSummaryOut(BaseModel):
    id: uuid.UUID
    name: str
    policy: str
    policy_config: dict[str, Any]
    checkpoint: str | None
    n: int
    params: dict[str, Any]
    seed: int | None
    status: str
    created_at: datetime

    @classmethod
    def of(cls, g: Generation) -> GenerationSummaryOut:
        return cls(
            id=g.id,
            name=g.name,
            policy=g.policy,
            policy_config=g.policy_config,
            checkpoint=g.checkpoint,
            n=g.n,
            params=g.params,
            seed=g.seed,
            status=g.status,
            created_at=g.created_at,
        )


class GenerationOut(GenerationSummaryOut):
    counts: dict[str, int] = Field(description="Samples by status: pending, done, failed.")
    cost_usd: Decimal
    total_prompts: int
    prompts: list[PromptOut]

    @classmethod
    def build(cls, view: generation_requests.GenerationView) -> GenerationOut:
        prompts = [
            PromptOut(
                prompt_id=p.prompt_id,
                prompt_key=p.prompt_key,
                id=p.external_id,
                prompt=p.prompt,
                metadata=p.metadata,
                candidates=[
                    CandidateOut(
                        id=c.id, text=c.text, count=c.count, sample_indexes=list(c.sample_indexes)
                    )
                    for c in p.candidates
                ],
                failed=[
                    FailedSampleOut(
                        sample_index=f.sample_index,
                        error_class=f.error_class,
                        error_message=f.error_message,
                    )
                    for f in p.failed
                ],
                pending=p.pending,
                samples=[
                    SampleOut.model_validate(s, from_attributes=True)
                    for s in view.samples.get(p.prompt_id, [])
                ],
            )
            for p in view.prompts
        ]
        summary = GenerationSummaryOut.of(view.generation).model_dump()
        return cls(
            **summary,
            counts=view.counts,
            cost_usd=view.cost_usd,
            total_prompts=view.total_prompts,
            prompts=prompts,
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=GenerationOut,
    responses=error_responses(
        400, 403, 413, 422, 503, e422="A bound passed (n, prompts, max_tokens) or a bad prompt."
    ),
)
async def create_generation(body: GenerationCreate, labeler: LabelerDep) -> GenerationOut:
    """Sample `n` answers per prompt from the policy and store each with its provenance.

    Identical answers to a prompt are one candidate with a count; a failed
    sample is listed with its error, never given a text. The same request
    again returns the stored generation, drawing only samples still pending.
    """
    spec = GenerationSpec(
        policy=body.policy,
        n=body.n,
        checkpoint=body.checkpoint,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens,
        seed=body.seed,
        name=body.name,
    )
    view = await generation_requests.generate(labeler, spec, body.prompts)
    return GenerationOut.build(view)


@router.get("", response_model=list[GenerationSummaryOut], responses=error_responses(422))
async def list_generations(
    labeler: LabelerDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[GenerationSummaryOut]:
    """The newest generations first."""
    return [GenerationSummaryOut.of(g) for g in await generation_requests.recent(labeler, limit)]


@router.get("/{generation_id}", response_model=GenerationOut, responses=error_responses(404, 422))
async def get_generation(
    generation_id: uuid.UUID,
    labeler: LabelerDep,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> GenerationOut:
    """A generation, a page of its prompts (file order) with candidates and sample provenance."""
    view = await generation_requests.find(labeler, generation_id, offset=offset, limit=limit)
    if view is None:
        raise NotFoundError(f"no generation {generation_id}")
    return GenerationOut.build(view)
