"""/v1/ratings: grade one response against a rubric; fetch a stored rating."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, FiniteFloat

from app.api.deps import LabelerDep
from app.api.errors import error_responses
from app.api.limits import check_metadata, check_rubric_text
from app.api.schemas import CallOut, call_out
from app.errors import NotFoundError
from app.labeling.rate import Rater, ResponseItemIn, RubricChoice
from app.labeling.text_rules import CleanStr, Int32, JudgeSpec, RubricName
from app.store.models import Rating

router = APIRouter(prefix="/v1/ratings", tags=["ratings"])


class RatingCreate(ResponseItemIn):
    """A response to grade, the judge, and the rubric."""

    judge: JudgeSpec | None = Field(
        None,
        description="provider:model or a named judge; REFEREE_DEFAULT_JUDGE when omitted.",
        examples=["anthropic:claude-sonnet-4-6"],
    )
    rubric: RubricName | None = Field(
        None, description="helpfulness (default) or harmlessness; omit with rubric_text."
    )
    rubric_text: CleanStr | None = Field(None, description="Custom grading criteria instead.")
    scale_min: Int32 | None = Field(None, description="Lowest score (default 1).")
    scale_max: Int32 | None = Field(None, description="Highest score (default 10).")
    threshold: FiniteFloat | None = Field(
        None, description="Scores at or above are good (default 7)."
    )


class RubricOut(BaseModel):
    id: str
    version: str
    text: str
    scale_min: int
    scale_max: int
    threshold: float


class RatingOut(BaseModel):
    id: uuid.UUID
    external_id: str | None
    status: Literal["pending", "rated", "failed"]
    error_class: str | None
    judge: str
    judge_spec: str
    judge_config: dict[str, Any]
    template_version: str
    rubric: RubricOut
    prompt: Any
    response: Any
    metadata: dict[str, Any] | None
    score: int | None
    passed: bool | None = Field(description="score ≥ threshold; null until rated.")
    rationale: str | None
    created_at: datetime
    calls: list[CallOut]
    reused: bool = Field(False, description="True when a stored rating was returned.")

    @classmethod
    def build(cls, rating: Rating, *, reused: bool = False) -> RatingOut:
        return cls(
            id=rating.id,
            external_id=rating.external_id,
            status=rating.status,
            error_class=rating.error_class,
            judge=rating.judge,
            judge_spec=rating.judge_spec,
            judge_config=rating.judge_config,
            template_version=rating.template_version,
            rubric=RubricOut(
                id=rating.rubric,
                version=rating.rubric_version,
                text=rating.rubric_text,
                scale_min=rating.scale_min,
                scale_max=rating.scale_max,
                threshold=rating.threshold,
            ),
            prompt=rating.prompt,
            response=rating.response,
            metadata=rating.meta,
            score=rating.score,
            passed=rating.passed,
            rationale=rating.rationale,
            created_at=rating.created_at,
            calls=[call_out(c) for c in rating.calls],
            reused=reused,
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RatingOut,
    responses={
        200: {"model": RatingOut, "description": "A stored rating was reused."},
        **error_responses(
            400, 413, 422, 502, 503, e422="An invalid field or rubric (unknown name, bad scale)."
        ),
    },
)
async def create_rating(body: RatingCreate, labeler: LabelerDep, response: Response) -> RatingOut:
    """Grade one response against a rubric on its scale, with a rationale.

    The score becomes good/bad through the rubric's threshold (`passed`). The
    same response, judge, rubric and threshold return the stored rating
    (status 200, `reused: true`) without calling the model.
    """
    check_metadata(body.metadata, labeler.settings)
    check_rubric_text(body.rubric_text, labeler.settings)
    item = ResponseItemIn.model_validate(
        body.model_dump(include={"id", "prompt", "response", "metadata"})
    )
    choice = RubricChoice(
        name=body.rubric,
        text=body.rubric_text,
        scale_min=body.scale_min,
        scale_max=body.scale_max,
        threshold=body.threshold,
    )
    result = await Rater(labeler).rate(item, body.judge, choice)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return RatingOut.build(result.rating, reused=not result.created)


@router.get("/{rating_id}", response_model=RatingOut, responses=error_responses(404, 422))
async def get_rating(rating_id: uuid.UUID, labeler: LabelerDep) -> RatingOut:
    """One rating with its rubric and every judge call."""
    found = await Rater(labeler).find(rating_id)
    if found is None:
        raise NotFoundError(f"no rating {rating_id}")
    return RatingOut.build(found)
