"""/v1/revisions: critique and revise a response under a constitution; fetch a run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from app.api.deps import LabelerDep
from app.api.errors import error_responses
from app.api.limits import check_metadata
from app.api.schemas import CallOut, call_out
from app.errors import NotFoundError
from app.labeling.revise import MAX_ROUNDS, Reviser, RevisionItemIn, RevisionOptions
from app.labeling.text_rules import ConstitutionId, JudgeSpec, PrincipleId, SeedText
from app.store.models import Revision

router = APIRouter(prefix="/v1/revisions", tags=["revisions"])


class RevisionCreate(RevisionItemIn):
    """A prompt (and response) to critique and revise, the model that does it, the constitution."""

    constitution: ConstitutionId = Field(
        description="The constitution's id.", examples=["harmlessness"]
    )
    judge: JudgeSpec | None = Field(
        None,
        description="The model that critiques and revises (provider:model or a named judge).",
    )
    rounds: int = Field(1, ge=1, le=MAX_ROUNDS, description="Critique → revision rounds at most.")
    principle: PrincipleId | None = Field(None, description="Use this principle every round.")
    seed: SeedText = Field("0", description="Seeds the principle sampled per round.")
    generator: JudgeSpec | None = Field(
        None, description="Writes the initial response when none is given."
    )


class RoundOut(BaseModel):
    attempt: int
    round: int
    principle: str
    critique: str
    needs_revision: bool
    revised_response: str | None


class RevisionOut(BaseModel):
    id: uuid.UUID
    external_id: str | None
    status: Literal["pending", "done", "failed"]
    error_class: str | None
    judge: str
    constitution: str = Field(description="id@version:hash of the constitution used.")
    rounds_requested: int
    principle: str | None
    seed: str
    generator: str | None
    prompt: Any
    response: Any = Field(description="The initial response (given or generated).")
    revised: bool | None = Field(description="False: the first critique found nothing to fix.")
    final_response: str | None = Field(description="The last revision, when one happened.")
    metadata: dict[str, Any] | None
    rounds: list[RoundOut]
    calls: list[CallOut]
    created_at: datetime
    reused: bool = False

    @classmethod
    def build(cls, run: Revision, *, reused: bool = False) -> RevisionOut:
        return cls(
            id=run.id,
            external_id=run.external_id,
            status=run.status,
            error_class=run.error_class,
            judge=run.judge,
            constitution=run.constitution,
            rounds_requested=run.rounds_requested,
            principle=run.principle,
            seed=run.seed,
            generator=run.generator,
            prompt=run.prompt,
            response=run.response,
            revised=run.revised,
            final_response=run.final_response,
            metadata=run.meta,
            rounds=[RoundOut.model_validate(r, from_attributes=True) for r in run.rounds],
            calls=[call_out(c) for c in run.calls],
            created_at=run.created_at,
            reused=reused,
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RevisionOut,
    responses={
        200: {"model": RevisionOut, "description": "A finished run was reused."},
        **error_responses(
            400,
            413,
            422,
            502,
            503,
            e422="An invalid field, an unknown constitution or principle.",
            e502="A model call failed; the calls are stored.",
        ),
    },
)
async def create_revision(
    body: RevisionCreate, labeler: LabelerDep, response: Response
) -> RevisionOut:
    """Critique the response against a principle and revise it, for up to `rounds` rounds.

    Each round samples a principle (seeded, recorded) unless one is named; a
    critique that finds nothing to fix ends the loop without a revision.
    """
    check_metadata(body.metadata, labeler.settings)
    item = RevisionItemIn.model_validate(
        body.model_dump(include={"id", "prompt", "response", "metadata"})
    )
    options = RevisionOptions(
        constitution=body.constitution,
        judge=body.judge,
        rounds=body.rounds,
        principle=body.principle,
        seed=body.seed,
        generator=body.generator,
    )
    result = await Reviser(labeler).revise(item, options)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return RevisionOut.build(result.revision, reused=not result.created)


@router.get("/{revision_id}", response_model=RevisionOut, responses=error_responses(404, 422))
async def get_revision(revision_id: uuid.UUID, labeler: LabelerDep) -> RevisionOut:
    """One run with its rounds and every model call."""
    found = await Reviser(labeler).find(revision_id)
    if found is None:
        raise NotFoundError(f"no revision run {revision_id}")
    return RevisionOut.build(found)
