"""The judge backend contract.

A backend implements one abstract method, :meth:`Judge.answer`: show the
model one ordered pair and return its parsed answer. Rating single
responses, :meth:`Judge.rate`, is optional: a pairwise-only backend
inherits a default that refuses with a config error. Orders, retries and
the mapping back to a/b live in :mod:`judges.protocol`, once for every
backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from judges.config import JudgeConfig
from judges.errors import JudgeConfigError
from judges.limits import RateLimits
from judges.rubrics import Rubric
from judges.types import PairwiseAnswer, RatingAnswer, ShownPair, Text, Usage


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


class Judge(ABC):
    """A configured judge model. Built once per process and shared by all tasks."""

    provider: ClassVar[str]
    supports_logprobs: ClassVar[bool] = False

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.limits = RateLimits(config.rpm, config.tpm)

    @abstractmethod
    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        """Ask the model about one ordered pair.

        ``question`` replaces the template's default question (a
        constitution principle, for instance). Raises a
        :class:`judges.errors.JudgeError` subclass on any failure.
        """

    async def rate(self, prompt: Text, response: Text, rubric: Rubric) -> RawRating:
        """Ask the model to score one response to ``prompt`` against ``rubric``.

        The score is checked against the rubric's scale. Raises a
        :class:`judges.errors.JudgeError` subclass on any failure; backends
        that do not override this raise :class:`JudgeConfigError`.
        """
        raise JudgeConfigError(f"{self.provider} judges cannot rate single responses")

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release clients and connections."""
