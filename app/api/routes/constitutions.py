"""/v1/constitutions: the constitutions this service judges and revises under."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import LabelerDep
from app.api.errors import error_responses
from app.errors import NotFoundError
from app.labeling.text_rules import ConstitutionId
from judges.cai.constitutions import (
    Constitution,
    ConstitutionError,
    ConstitutionScan,
)
from judges.types import Text

router = APIRouter(prefix="/v1/constitutions", tags=["constitutions"])


class ConstitutionSummary(BaseModel):
    id: str
    version: str
    content_hash: str = Field(description="SHA-256 of the whole content; any edit changes it.")
    ref: str = Field(description="id@version:hash12, as stored with results.")
    description: str
    principles: int = Field(description="How many principles it has.")
    critique_examples: int
    preference_examples: int


class ConstitutionProblem(BaseModel):
    """A file in the folder that does not load; the others are still served."""

    file: str = Field(description="The file's name in the constitutions folder.")
    principle: str | int | None = Field(description="Principle id, or its 1-based position.")
    field: str | None
    line: int | None = Field(description="Line of a YAML syntax error.")
    message: str


class ConstitutionsOut(BaseModel):
    constitutions: list[ConstitutionSummary]
    problems: list[ConstitutionProblem]


class MessageOut(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class PrincipleOut(BaseModel):
    id: str
    critique_request: str
    revision_request: str
    preference_question: str
    weight: float
    tags: list[str]


class CritiqueExampleOut(BaseModel):
    prompt: str | list[MessageOut]
    response: str
    critique: str
    needs_revision: bool
    revision: str | None


class PreferenceExampleOut(BaseModel):
    prompt: str | list[MessageOut]
    response_a: str
    response_b: str
    choice: Literal["a", "b"]
    explanation: str | None


class ConstitutionOut(BaseModel):
    id: str
    version: str
    content_hash: str
    ref: str
    description: str
    principles: list[PrincipleOut]
    critique_examples: list[CritiqueExampleOut]
    preference_examples: list[PreferenceExampleOut]


def _scan(labeler: LabelerDep) -> ConstitutionScan:
    """The library's view of the folder: re-read when a file changed, so edits show at once."""
    return labeler.constitutions.scan()


def _problem(exc: ConstitutionError) -> ConstitutionProblem:
    name = Path(exc.file).name if exc.file else "<constitution>"
    return ConstitutionProblem(
        file=name, principle=exc.principle, field=exc.field, line=exc.line, message=exc.format(name)
    )


def _summary(c: Constitution) -> ConstitutionSummary:
    return ConstitutionSummary(
        id=c.id,
        version=c.version,
        content_hash=c.content_hash,
        ref=c.ref,
        description=c.description,
        principles=len(c.principles),
        critique_examples=len(c.critique_examples),
        preference_examples=len(c.preference_examples),
    )


def _prompt(prompt: Text) -> str | list[MessageOut]:
    if isinstance(prompt, str):
        return prompt
    return [MessageOut(role=m.role, content=m.content) for m in prompt]


def _full(c: Constitution) -> ConstitutionOut:
    return ConstitutionOut(
        id=c.id,
        version=c.version,
        content_hash=c.content_hash,
        ref=c.ref,
        description=c.description,
        principles=[PrincipleOut.model_validate(p.to_dict()) for p in c.principles],
        critique_examples=[
            CritiqueExampleOut.model_validate({**e.to_dict(), "prompt": _prompt(e.prompt)})
            for e in c.critique_examples
        ],
        preference_examples=[
            PreferenceExampleOut.model_validate({**e.to_dict(), "prompt": _prompt(e.prompt)})
            for e in c.preference_examples
        ],
    )


@router.get("", response_model=ConstitutionsOut)
def list_constitutions(labeler: LabelerDep) -> ConstitutionsOut:
    """Every valid constitution in the folder, and the files that failed to load.

    A broken file never hides the good ones: it is listed in `problems`
    with its file, principle and field.
    """
    scan = _scan(labeler)
    return ConstitutionsOut(
        constitutions=[_summary(c) for _, c in sorted(scan.constitutions.items())],
        problems=[_problem(p) for p in scan.problems],
    )


@router.get(
    "/{constitution_id}", response_model=ConstitutionOut, responses=error_responses(404, 422)
)
def get_constitution(constitution_id: ConstitutionId, labeler: LabelerDep) -> ConstitutionOut:
    """One constitution in full: every principle and few-shot example, with its content hash."""
    scan = _scan(labeler)
    found = scan.constitutions.get(constitution_id)
    if found is None:
        raise NotFoundError(
            f"no constitution {constitution_id!r}; known: "
            f"{', '.join(sorted(scan.constitutions)) or 'none'}",
            known=sorted(scan.constitutions),
            problems=[_problem(p).message for p in scan.problems],
        )
    return _full(found)
