"""What each kind of judge call asks the model to return, and how its answer is read.

A backend sends one request shape for every kind of call (a forced tool,
a strict JSON schema or the text fallback) and only the format differs:
its name, schema, text-mode instructions and parsers. Keeping these
together lets a backend serve comparisons, ratings, critiques and revisions
through one request path (:meth:`judges.base.Judge.ask`) instead of one
copy per kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from judges.cai.parsing import (
    CRITIQUE_TEXT_FORMAT_INSTRUCTIONS,
    REVISION_TEXT_FORMAT_INSTRUCTIONS,
    parse_critique_object,
    parse_critique_text,
    parse_revision_object,
    parse_revision_text,
)
from judges.cai.prompts import (
    CRITIQUE_SCHEMA,
    CRITIQUE_TOOL_NAME,
    REVISION_SCHEMA,
    REVISION_TOOL_NAME,
)
from judges.parsing import (
    RATING_TEXT_FORMAT_INSTRUCTIONS,
    TEXT_FORMAT_INSTRUCTIONS,
    load_json,
    parse_rating_object,
    parse_rating_text,
    parse_verdict_object,
    parse_verdict_text,
)
from judges.prompts import RATING_SCHEMA, RATING_TOOL_NAME, VERDICT_SCHEMA, VERDICT_TOOL_NAME
from judges.rubrics import Rubric
from judges.types import CritiqueAnswer, PairwiseAnswer, RatingAnswer, RevisionAnswer

AnswerT = TypeVar("AnswerT", PairwiseAnswer, RatingAnswer, CritiqueAnswer, RevisionAnswer)


@dataclass(frozen=True, slots=True)
class AnswerFormat(Generic[AnswerT]):
    """The structured answer one kind of call expects.

    ``tool_name`` names the forced tool (Anthropic), ``schema_name`` the
    ``response_format`` schema (OpenAI); ``text_instructions`` are appended
    to the prompt when the judge is configured for plain-text output.
    ``task`` completes "<provider> judges cannot …" for a backend that
    cannot make this kind of call.
    """

    task: str
    tool_name: str
    schema_name: str
    description: str
    schema: dict[str, Any]
    text_instructions: str
    parse_object: Callable[[object, str], AnswerT]
    parse_text: Callable[[str], AnswerT]

    def parse_json(self, text: str) -> AnswerT:
        """Parse a JSON-schema answer given as a string."""
        return self.parse_object(load_json(text), text)


VERDICT_FORMAT: AnswerFormat[PairwiseAnswer] = AnswerFormat(
    task="compare responses",
    tool_name=VERDICT_TOOL_NAME,
    schema_name="verdict",
    description="Record which response is better.",
    schema=VERDICT_SCHEMA,
    text_instructions=TEXT_FORMAT_INSTRUCTIONS,
    parse_object=parse_verdict_object,
    parse_text=parse_verdict_text,
)


def rating_format(rubric: Rubric) -> AnswerFormat[RatingAnswer]:
    """The rating format, its parsers bound to ``rubric``'s scale."""

    def parse_object(obj: object, raw_output: str) -> RatingAnswer:
        return parse_rating_object(obj, raw_output, rubric)

    def parse_text(text: str) -> RatingAnswer:
        return parse_rating_text(text, rubric)

    return AnswerFormat(
        task="rate single responses",
        tool_name=RATING_TOOL_NAME,
        schema_name="rating",
        description="Record the score of the response against the grading criteria.",
        schema=RATING_SCHEMA,
        text_instructions=RATING_TEXT_FORMAT_INSTRUCTIONS,
        parse_object=parse_object,
        parse_text=parse_text,
    )


CRITIQUE_FORMAT: AnswerFormat[CritiqueAnswer] = AnswerFormat(
    task="critique responses",
    tool_name=CRITIQUE_TOOL_NAME,
    schema_name="critique",
    description="Record the critique of the response and whether it needs a revision.",
    schema=CRITIQUE_SCHEMA,
    text_instructions=CRITIQUE_TEXT_FORMAT_INSTRUCTIONS,
    parse_object=parse_critique_object,
    parse_text=parse_critique_text,
)

REVISION_FORMAT: AnswerFormat[RevisionAnswer] = AnswerFormat(
    task="revise responses",
    tool_name=REVISION_TOOL_NAME,
    schema_name="revision",
    description="Record the rewritten response.",
    schema=REVISION_SCHEMA,
    text_instructions=REVISION_TEXT_FORMAT_INSTRUCTIONS,
    parse_object=parse_revision_object,
    parse_text=parse_revision_text,
)
