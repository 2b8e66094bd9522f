"""/v1/rounds: start (or resume) an RLAIF round in the background; list and show rounds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, Field, FiniteFloat

from app.api.deps import LabelerDep
from app.api.errors import error_responses
from app.api.routes.generations import SamplingCreate
from app.labeling.rounds import round_info
from app.labeling.rounds.round_run import MAX_ROUND_NAME, RoundSpec
from app.labeling.text_rules import BatchName, JudgeSpec
from app.store.limits import INT32_MAX

router = APIRouter(prefix="/v1/rounds", tags=["rounds"])


class RoundCreate(SamplingCreate):
    """A round: the policy to sample, the prompts, the judge and strategy, and its parent."""

    name: BatchName = Field(
        max_length=MAX_ROUND_NAME,
        description="The round's name; the same request again resumes it.",
    )
    judge: JudgeSpec = Field(
        description="A rating judge (best-vs-worst) or a pairwise judge or jury; it also "
        "compares this round with its parent.",
        examples=["openai:gpt-4o-mini"],
    )
    n: int = Field(
        4, ge=2, le=INT32_MAX, description="Samples per prompt (≤ REFEREE_MAX_GENERATION_N)."
    )
    """A round needs two candidates a prompt to prefer one."""
    temperature: FiniteFloat = Field(1.0, ge=0, le=2)
    strategy: Literal["best-vs-worst", "all-pairs", "tournament"] = "best-vs-worst"
    parent: BatchName | None = Field(
        None, max_length=MAX_ROUND_NAME, description="The previous round's name."
    )
    margin: FiniteFloat | None = Field(
        None, gt=0, le=1_000_000, description="Skip a prompt whose best and worst are closer."
    )
    budget: int | None = Field(
        None, ge=1, le=INT32_MAX, description="tournament: pairs judged per prompt (≤ n(n-1)/2)."
    )


class RoundOut(BaseModel):
    name: str
    parent: str | None
    policy: str
    checkpoint: str | None
    prompts_source: str
    prompt_set_key: str
    prompt_count: int
    strategy: str
    judge: str
    params: dict[str, Any]
    stage: Literal["generate", "select", "compare", "done"]
    created_at: datetime
    updated_at: datetime


class RoundDetailOut(RoundOut):
    lineage: list[str] = Field(description="This round, its parent, its parent's parent, …")
    samples: dict[str, int] = Field(description="Samples by status.")
    selections: dict[str, int] = Field(description="Decisions: selected, or each skip reason.")
    head_to_head: dict[str, int] = Field(
        description="The comparisons with the parent's answers, by status."
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RoundDetailOut,
    responses=error_responses(
        400,
        403,
        404,
        409,
        413,
        422,
        429,
        503,
        e404="No parent round of that name.",
        e429="The key's daily budget is spent, or REFEREE_MAX_RUNNING_ROUNDS rounds run already"
        " (Retry-After).",
        e409="A round of this name exists with other parameters (the message names them).",
        e422="A bound passed (n, prompts, max_tokens, budget) or a bad prompt.",
    ),
)
async def create_round(body: RoundCreate, request: Request, labeler: LabelerDep) -> dict[str, Any]:
    """Store the round and run it in the background: generate → judge → select → head-to-head.

    Returns at once (202) with the round; `GET /v1/rounds/{name}` shows its
    progress. The same request again resumes it and repeats nothing; the same
    name with other parameters is a 409 naming what differs.
    """
    spec = RoundSpec(
        name=body.name,
        policy=body.policy,
        judge=body.judge,
        n=body.n,
        strategy=body.strategy,
        checkpoint=body.checkpoint,
        parent=body.parent,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens,
        seed=body.seed,
        margin=body.margin,
        budget=body.budget,
    )
    return await round_info.start_round(labeler, request.app.state.workers, spec, body.prompts)


@router.get("", response_model=list[RoundOut], responses=error_responses(422))
async def list_rounds(
    labeler: LabelerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """Rounds, oldest first, each with its parent's name."""
    return await round_info.list_rounds(labeler, limit)


@router.get("/{name}", response_model=RoundDetailOut, responses=error_responses(404, 422))
async def get_round(
    name: Annotated[BatchName, Path(max_length=MAX_ROUND_NAME)], labeler: LabelerDep
) -> dict[str, Any]:
    """A round with its lineage and progress: samples, decisions, head-to-head comparisons."""
    return await round_info.describe_round(labeler, name)
