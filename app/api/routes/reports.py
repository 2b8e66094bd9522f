"""/v1/reports: how good the labels are; /v1/comparisons/{id}/reviews: human verdicts in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import DatabaseDep
from app.api.errors import error_responses
from app.labeling.gold import ReviewIn, add_review
from app.labeling.text_rules import BatchName, JudgeSpec
from app.reports.build import ReportOptions, build_report
from app.reports.metrics import Bootstrap
from app.store.limits import INT64_MAX

router = APIRouter(prefix="/v1/reports", tags=["reports"])
reviews_router = APIRouter(prefix="/v1/comparisons", tags=["comparisons"])

REPORT_DESCRIPTION = (
    "The judge-quality report as JSON: `judges` and `batches` blocks (agreement with gold "
    "labels with and without ties, Cohen's kappa, position consistency, length bias, tie and "
    "failure rates, calibration, cost per 1,000 labels, each share with a seeded bootstrap "
    "interval and its n; `by_category`: agreement per metadata.category) and `judge_agreement` "
    "between judges. The README's 'Measuring judges' section lists every key."
)


class EstimateOut(BaseModel):
    """A share or statistic, its seeded bootstrap interval, and how many items it is over."""

    value: float | None = Field(description="None when n is 0 (or kappa is undefined).")
    ci: tuple[float, float] | None
    n: int


class BatchRef(BaseModel):
    id: str
    name: str


class CountsOut(BaseModel):
    comparisons: int
    labeled: int
    failed: int
    pending: int
    with_gold: int


class WinnersOut(BaseModel):
    a: int
    b: int
    tie: int


class AgreementOut(BaseModel):
    with_ties: EstimateOut = Field(description="MT-Bench 'with tie': a tie is a third class.")
    without_ties: EstimateOut = Field(description="Over pairs where neither side said tie.")
    kappa: EstimateOut = Field(description="Cohen's kappa over a / b / tie.")


class PositionOut(BaseModel):
    consistency: EstimateOut
    inconsistent: int
    favoured_first: EstimateOut


class LengthOut(BaseModel):
    judge_prefers_longer: EstimateOut
    gold_prefers_longer: EstimateOut


class BinOut(BaseModel):
    lower: float
    upper: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


class CalibrationOut(BaseModel):
    ece: float | None
    n: int
    bins: list[BinOut]


class CostOut(BaseModel):
    usd: float
    calls: int
    unpriced_calls: int
    labels: int
    per_1000_labels_usd: float | None


class CategoryOut(BaseModel):
    """Agreement with gold over the gold pairs of one ``metadata.category``."""

    category: str | None = Field(
        description="The comparisons' metadata.category; null for gold pairs without one."
    )
    gold_pairs: int
    agreement: AgreementOut


class BlockOut(BaseModel):
    """The metrics of one judge, or of one batch and its judge."""

    judge: str
    batch: BatchRef | None
    counts: CountsOut
    winners: WinnersOut
    tie_rate: EstimateOut
    failure_rate: EstimateOut
    agreement: AgreementOut
    position: PositionOut
    length: LengthOut
    calibration: CalibrationOut
    cost: CostOut
    by_category: list[CategoryOut] = Field(
        description="Agreement per metadata.category, sorted, uncategorised last; empty when "
        "no gold pair has a category."
    )


class TemplateBlockOut(BlockOut):
    """The metrics of one judge under one template: compare templates on one gold set."""

    template: str = Field(description="The template ref the comparisons were judged under.")
    cost: CostOut | None = Field(  # type: ignore[assignment]
        description="Not costed per template (calls are costed per judge and batch): null."
    )


class PairAgreementOut(BaseModel):
    judge_a: str
    judge_b: str
    pairs: int
    agreement: EstimateOut
    kappa: EstimateOut


class ScopeOut(BaseModel):
    judge: str | None
    batch: BatchRef | None


class SettingsOut(BaseModel):
    resamples: int
    confidence_level: float
    seed: int
    calibration_bins: int


class GoldOut(BaseModel):
    pairs: int
    winners: WinnersOut
    sources: dict[str, int]


class ReportOut(BaseModel):
    """The judge-quality report (the README's "Measuring judges" describes every key)."""

    schema_version: int
    generated_at: str
    scope: ScopeOut
    settings: SettingsOut
    gold: GoldOut
    judges: list[BlockOut]
    batches: list[BlockOut]
    templates: list[TemplateBlockOut] = Field(
        default_factory=list, description="One block per judge and template ref."
    )
    judge_agreement: list[PairAgreementOut]


class ReviewOut(BaseModel):
    """A stored review: a gold label on the comparison's pair."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    comparison_id: uuid.UUID | None
    pair_key: str
    winner: Literal["a", "b", "tie"]
    source: str
    reviewer: str | None
    note: str | None
    created_at: datetime


def _options(
    judge: str | None, batch: str | None, resamples: int, confidence: float, seed: int, bins: int
) -> ReportOptions:
    return ReportOptions(
        judge=judge,
        batch=batch,
        bootstrap=Bootstrap(resamples=resamples, confidence=confidence, seed=seed),
        calibration_bins=bins,
    )


Resamples = Annotated[int, Query(ge=1, le=20_000, description="Bootstrap resamples.")]
Confidence = Annotated[float, Query(ge=0.5, le=0.999, description="Interval confidence level.")]
Seed = Annotated[
    int,
    Query(ge=0, le=INT64_MAX, description="Bootstrap seed: the same seed gives the same report."),
]
Bins = Annotated[int, Query(ge=2, le=100, description="Calibration bins.")]


@router.get(
    "/summary",
    response_model=ReportOut,
    description=REPORT_DESCRIPTION,
    responses=error_responses(404, 422, e404="No such batch."),
)
async def summary_report(
    db: DatabaseDep,
    judge: Annotated[JudgeSpec | None, Query(description="Only this judge.")] = None,
    batch: Annotated[BatchName | None, Query(description="Only this batch (name or id).")] = None,
    resamples: Resamples = 1000,
    confidence: Confidence = 0.95,
    seed: Seed = 0,
    bins: Bins = 10,
) -> dict[str, Any]:
    """Metrics per judge and per batch over every comparison the filters select."""
    return await build_report(db, _options(judge, batch, resamples, confidence, seed, bins))


@router.get(
    "/batches/{batch_id}",
    response_model=ReportOut,
    description=REPORT_DESCRIPTION,
    responses=error_responses(404, 422, e404="No such batch."),
)
async def batch_report(
    batch_id: uuid.UUID,
    db: DatabaseDep,
    resamples: Resamples = 1000,
    confidence: Confidence = 0.95,
    seed: Seed = 0,
    bins: Bins = 10,
) -> dict[str, Any]:
    """The report over one batch."""
    return await build_report(db, _options(None, str(batch_id), resamples, confidence, seed, bins))


@reviews_router.post(
    "/{comparison_id}/reviews",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewOut,
    responses=error_responses(400, 404, 413, 422, e404="No such comparison."),
)
async def create_review(comparison_id: uuid.UUID, body: ReviewIn, db: DatabaseDep) -> ReviewOut:
    """Record a person's verdict on a comparison as a gold label; machine verdicts stay.

    Every review is kept; in reports a review outranks an imported label for
    the same pair, and the newest review counts.
    """
    review = await add_review(db, comparison_id, body)
    return ReviewOut.model_validate(review)
