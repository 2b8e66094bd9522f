"""/v1/templates: the judging templates and named criteria this service judges with."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.errors import error_responses
from judges.templates import PairwiseTemplate, TemplateError, template_scan

router = APIRouter(prefix="/v1/templates", tags=["templates"])


class TemplateOut(BaseModel):
    id: str
    ref: str = Field(
        description="What verdicts store as template_version and label keys hold:"
        " id@version:hash12 (pairwise-v1 while unchanged)."
    )
    version: str
    content_hash: str = Field(description="SHA-256 of the whole content; any edit changes it.")
    description: str
    system: str
    instructions: str
    closing: str
    criteria: str | None = Field(description="How the request's criteria are introduced.")
    reference: str | None = Field(description="How a pair's reference answer is introduced.")
    conversation: str | None = Field(
        description="What is said when the prompt has earlier assistant turns."
    )
    preference_examples: int = Field(description="Worked examples shown as earlier turns.")
    few_shot_tokens: int = Field(description="Token budget of the worked examples.")


class TemplateProblem(BaseModel):
    """A file that does not load; the others are still served."""

    file: str = Field(description="The file's name in its folder.")
    line: int | None
    field: str | None
    message: str


class TemplatesOut(BaseModel):
    templates: list[TemplateOut]
    criteria: dict[str, str] = Field(
        description="Named criteria: a pair's `criteria` may name one."
    )
    problems: list[TemplateProblem]


def _out(t: PairwiseTemplate) -> TemplateOut:
    return TemplateOut(
        id=t.id,
        ref=t.ref,
        version=t.file_version,
        content_hash=t.content_hash,
        description=t.description,
        system=t.system,
        instructions=t.instructions,
        closing=t.closing,
        criteria=t.criteria,
        reference=t.reference,
        conversation=t.conversation,
        preference_examples=len(t.preference_examples),
        few_shot_tokens=t.few_shot_tokens,
    )


def _problem(exc: TemplateError) -> TemplateProblem:
    name = Path(exc.file).name if exc.file else "<template>"
    message = exc.message.replace(exc.file, name, 1) if exc.file else exc.message
    return TemplateProblem(file=name, line=exc.line, field=exc.field, message=message)


@router.get("", response_model=TemplatesOut, responses=error_responses())
def list_templates() -> TemplatesOut:
    """Every valid template in full, the named criteria, and the files that failed to load.

    A broken file never hides the good ones: it is listed in `problems`
    with its file, line and field.
    """
    scan = template_scan()
    return TemplatesOut(
        templates=[_out(t) for _, t in sorted(scan.templates.items())],
        criteria=dict(sorted(scan.criteria.items())),
        problems=[_problem(p) for p in scan.problems],
    )
