"""The judge backend contract.

A backend implements one abstract method, :meth:`Judge.answer`: show the
model one ordered pair and return its parsed answer. Everything else is
optional. A backend that can make one structured call,
:meth:`Judge.ask` (a system and user text in, an answer in the given
:class:`~judges.formats.AnswerFormat` out), gets ratings, critiques and
revisions from it; :meth:`Judge.generate` writes free text and has a
method of its own. What a backend does not implement refuses with a
config error. Orders, retries, revision loops and the mapping back to a/b
live in :mod:`judges.protocol` and :mod:`judges.cai.protocol`, once for every
backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from judges.cai.constitutions import CritiqueExample, Principle
from judges.cai.prompts import CRITIQUE_V1, REVISION_V1
from judges.config import JudgeConfig
from judges.errors import JudgeConfigError
from judges.formats import CRITIQUE_FORMAT, REVISION_FORMAT, AnswerFormat, AnswerT, rating_format
from judges.limits import RateLimits
from judges.prompts import RATING_V1
from judges.rubrics import Rubric
from judges.types import (
    CritiqueAnswer,
    GeneratedText,
    PairwiseAnswer,
    RatingAnswer,
    RevisionAnswer,
    ShownPair,
    Text,
    Usage,
)


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """One successful model call: the parsed answer plus what it cost."""

    answer: PairwiseAnswer
    raw_output: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class RawRating:
    """One successful rating call: the parsed score plus what it cost."""

    answer: RatingAnswer
    raw_output: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class RawCritique:
    """One successful critique call: the critique and its decision, plus what it cost."""

    answer: CritiqueAnswer
    raw_output: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class RawRevision:
    """One successful revision call: the rewritten response (preamble stripped), plus cost."""

    answer: RevisionAnswer
    raw_output: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class RawGenerated:
    """One successful generation call: the text written, plus what it cost."""

    answer: GeneratedText
    raw_output: str
    usage: Usage


RawCall: TypeAlias = RawAnswer | RawRating | RawCritique | RawRevision | RawGenerated
"""What any successful model call returns."""


class Judge(ABC):
    """A configured judge model. Built once per process and shared by all tasks."""

    provider: ClassVar[str]
    supports_logprobs: ClassVar[bool] = False

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.limits = RateLimits(config.rpm, config.tpm)

    @property
    def position_free(self) -> bool:
        """Whether the judge scores each response on its own (a reward model).

        Such a judge has no position to be biased by, so the protocol asks
        it once per pair, in the a|b order, whatever the order policy says.
        """
        return False

    @abstractmethod
    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        """Ask the model about one ordered pair.

        ``question`` replaces the template's default question (a
        constitution principle, for instance). Raises a
        :class:`judges.errors.JudgeError` subclass on any failure.
        """

    async def ask(
        self, system: str, user: str, fmt: AnswerFormat[AnswerT]
    ) -> tuple[AnswerT, str, Usage]:
        """Make one call that must answer in ``fmt``: the parsed answer, raw output and usage.

        Structured output (a forced tool, a strict JSON schema) or, with
        ``output: text``, ``fmt``'s text format. Raises a
        :class:`judges.errors.JudgeError` subclass on any failure, with the
        usage of a call that was made; backends that do not override this
        raise :class:`JudgeConfigError`.
        """
        raise JudgeConfigError(f"{self.provider} judges cannot {fmt.task}")

    async def rate(self, prompt: Text, response: Text, rubric: Rubric) -> RawRating:
        """Ask the model to score one response to ``prompt`` against ``rubric``.

        The score is checked against the rubric's scale. Raises a
        :class:`judges.errors.JudgeError` subclass on any failure.
        """
        system, user = RATING_V1.render(prompt, response, rubric)
        return RawRating(*await self.ask(system, user, rating_format(rubric)))

    async def critique(
        self,
        prompt: Text,
        response: Text,
        principle: Principle,
        examples: Sequence[CritiqueExample] = (),
    ) -> RawCritique:
        """Critique ``response`` under ``principle``'s critique request (``examples`` as few-shot).

        The answer says whether the response needs a revision. Raises a
        :class:`judges.errors.JudgeError` subclass on any failure.
        """
        system, user = CRITIQUE_V1.render(prompt, response, principle, examples)
        return RawCritique(*await self.ask(system, user, CRITIQUE_FORMAT))

    async def revise(
        self,
        prompt: Text,
        response: Text,
        principle: Principle,
        critique: str,
        examples: Sequence[CritiqueExample] = (),
    ) -> RawRevision:
        """Rewrite ``response`` to fix ``critique``, under ``principle``'s revision request.

        The revision comes back with any preamble ("Sure, here is a revised
        response:") stripped; one that is empty then is unparseable. Raises
        a :class:`judges.errors.JudgeError` subclass on any failure.
        """
        system, user = REVISION_V1.render(prompt, response, principle, critique, examples)
        return RawRevision(*await self.ask(system, user, REVISION_FORMAT))

    async def generate(self, prompt: Text) -> RawGenerated:
        """Write a response to ``prompt`` (a string, or a conversation sent as is).

        Free text, no structured format. Raises a
        :class:`judges.errors.JudgeError` subclass on any failure; backends
        that do not override this raise :class:`JudgeConfigError`.
        """
        raise JudgeConfigError(f"{self.provider} judges cannot generate responses")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients and connections."""
