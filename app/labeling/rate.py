"""Rate one response against a rubric, storing every call and the score (or the failure).

Like :mod:`app.labeling.compare`, it reads, calls the judge with no
transaction open, then writes in one short transaction. A rating is keyed by
the prompt, the response, the judge configuration, the rubric version and
the threshold: asking again reuses it, and a file run resumes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidInputError, JudgeFailedError
from app.keys import KEY_SCHEMA_VERSION, content_key, document_key
from app.labeling.calls import call_row
from app.labeling.compare import Labeler
from app.labeling.inputs import Prompt, Response, check_text_sizes, to_text
from app.labeling.screening import screen_empty
from app.labeling.text_rules import ExternalId, Metadata
from app.store import ratings
from app.store.models import Rating
from judges import JudgeConfig, JudgeConfigError, RatingOutcome, Rubric, get_rubric, rate_response
from judges.base import Judge
from judges.prompts import RATING_V1


class ResponseItemIn(BaseModel):
    """One response to rate: ``{"id"?, "prompt", "response", "metadata"?}``."""

    model_config = ConfigDict(extra="forbid")

    id: ExternalId | None = Field(None, description="Your identifier for the item.")
    prompt: Prompt
    response: Response
    metadata: Metadata | None = Field(None, description="Free-form, stored as given.")

    def stored(self) -> dict[str, Any]:
        return self.model_dump(include={"prompt", "response"}, mode="json")


@dataclass(frozen=True, slots=True)
class RubricChoice:
    """A rubric as a caller names it: built-in name or custom text, optional overrides."""

    name: str | None = None
    text: str | None = None
    scale_min: int | None = None
    scale_max: int | None = None
    threshold: float | None = None

    def resolve(self) -> Rubric:
        try:
            return get_rubric(
                self.name,
                text=self.text,
                scale_min=self.scale_min,
                scale_max=self.scale_max,
                threshold=self.threshold,
            )
        except JudgeConfigError as exc:
            raise InvalidInputError(exc.message, field="rubric") from None


@dataclass(frozen=True, slots=True)
class RateResult:
    rating: Rating
    created: bool


def rating_key(stored: dict[str, Any], config: JudgeConfig, rubric: Rubric) -> str:
    document = {
        "v": KEY_SCHEMA_VERSION,
        "kind": "rating",
        "item": stored,
        "judge": config.fingerprint(),
        "rubric": rubric.version,
        "threshold": rubric.threshold,
    }
    return document_key(document)


def rating_values(
    item: ResponseItemIn, config: JudgeConfig, rubric: Rubric, key: str
) -> dict[str, Any]:
    stored = item.stored()
    return {
        "label_key": key,
        "content_key": content_key(stored["prompt"], stored["response"]),
        "external_id": item.id,
        "meta": item.metadata,
        "judge": config.label,
        "judge_spec": config.spec,
        "judge_config": config.fingerprint(),
        "template_version": RATING_V1.version,
        "rubric": rubric.id,
        "rubric_version": rubric.version,
        "rubric_text": rubric.text,
        "scale_min": rubric.scale_min,
        "scale_max": rubric.scale_max,
        "threshold": rubric.threshold,
        **stored,
    }


def outcome_values(outcome: RatingOutcome) -> dict[str, Any]:
    """The rating row's new state after a run: a score, or a failure and no score."""
    if outcome.rating is None:
        return {"status": "failed", "error_class": outcome.error_class}
    return {
        "status": "rated",
        "error_class": None,
        "score": outcome.rating.score,
        "passed": outcome.rating.passed,
        "rationale": outcome.rating.rationale,
    }


class Rater:
    """The rating use case over a labeler's database, registry and settings."""

    def __init__(self, labeler: Labeler) -> None:
        self.labeler = labeler

    def check_sizes(self, item: ResponseItemIn) -> None:
        texts = {"prompt": to_text(item.prompt), "response": to_text(item.response)}
        check_text_sizes(texts, self.labeler.settings.max_text_chars)
        screen_empty(texts, self.labeler.settings.empty_texts)

    async def rate(
        self,
        item: ResponseItemIn,
        judge_spec: str | None,
        choice: RubricChoice,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
    ) -> RateResult:
        """Rate one response, or return its stored rating; a stored failure is rated again.

        ``rpm``/``tpm`` are client-side rate limits on the judge (not part of the label key).
        """
        self.check_sizes(item)
        rubric = choice.resolve()
        config = self.labeler.with_limits(self.labeler.resolve(judge_spec), rpm, tpm)
        judge = self.labeler.judge_for(config)
        values = rating_values(item, config, rubric, rating_key(item.stored(), config, rubric))
        async with self.labeler.holding(judge):
            result, started = await self.labeler.flights.run(
                ("rating", values["label_key"]),
                lambda: self._rate_once(item, config, judge, rubric, values),
            )
        # Callers who joined a rating in flight were not the ones who paid for it.
        return result if started else RateResult(result.rating, created=False)

    async def _rate_once(
        self,
        item: ResponseItemIn,
        config: JudgeConfig,
        judge: Judge,
        rubric: Rubric,
        values: dict[str, Any],
    ) -> RateResult:
        db = self.labeler.db
        async with self.labeler.holding(judge):
            async with db.transaction() as session:
                existing = await ratings.get_by_label_key(session, values["label_key"])
            if existing is not None and existing.status == "rated":
                return RateResult(existing, created=False)
            prompt, response = to_text(item.prompt), to_text(item.response)
            outcome = await rate_response(judge, prompt, response, rubric)

        async with db.transaction() as session:
            rating_id = await ratings.insert_if_absent(session, values)
            # Another process may have rated it meanwhile: the first score stands
            # (the key is unique), this run's calls are kept as paid for.
            taken = await ratings.lock_status(session, rating_id) == "rated"
            calls = [call_row(config, call) for call in outcome.calls]
            result = {} if taken else outcome_values(outcome)
            await ratings.write_result(session, rating_id, calls, result)
            stored = await ratings.get(session, rating_id)
        assert stored is not None
        if taken:
            return RateResult(stored, created=False)
        if outcome.rating is None:
            raise JudgeFailedError(
                f"judge {config.label} failed: {outcome.error_class}: {outcome.error_message}",
                rating_id=str(rating_id),
                error_class=outcome.error_class,
            )
        return RateResult(stored, created=True)

    async def find(self, rating_id: uuid.UUID) -> Rating | None:
        async with self.labeler.db.transaction() as session:
            return await ratings.get(session, rating_id)
