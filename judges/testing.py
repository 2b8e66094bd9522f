"""Test doubles for judges, public so plugins and pipelines can test against them.

:class:`ScriptedJudge` decides in process from what it is shown, through a
policy function, and goes through the same registry and protocol as a real
backend::

    registry.register("scripted", lambda config: ScriptedJudge(config, prefer_longer))

Ratings come from a rater function the same way, and go through the same
scale check as a real backend's, so a rater returning 11 on a 1-10 rubric
fails as unparseable just as a model answering 11 would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from judges.base import Judge, RawAnswer, RawRating
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.parsing import json_dumps_compact, parse_rating_object
from judges.prompts import render_text
from judges.rubrics import Rubric
from judges.types import PairwiseAnswer, Position, ShownPair, Text, Usage

Policy = Callable[[ShownPair], Position]
Rater = Callable[[Text, Text, Rubric], int]


def always_first(_shown: ShownPair) -> Position:
    """A maximally position-biased judge."""
    return Position.FIRST


def prefer_longer(shown: ShownPair) -> Position:
    """Prefer the longer response; equal lengths tie."""
    first, second = len(render_text(shown.first)), len(render_text(shown.second))
    if first == second:
        return Position.TIE
    return Position.FIRST if first > second else Position.SECOND


def prefer_containing(marker: str) -> Policy:
    """Prefer the response containing ``marker``; neither or both tie."""

    def policy(shown: ShownPair) -> Position:
        in_first, in_second = (
            marker in render_text(shown.first),
            marker in render_text(shown.second),
        )
        if in_first == in_second:
            return Position.TIE
        return Position.FIRST if in_first else Position.SECOND

    return policy


CHARACTERS_PER_POINT = 10


def rate_by_length(_prompt: Text, response: Text, rubric: Rubric) -> int:
    """One point above the bottom of the scale per 10 characters, capped at the top."""
    points = len(render_text(response)) // CHARACTERS_PER_POINT
    return min(rubric.scale_min + points, rubric.scale_max)


def constant_score(score: int) -> Rater:
    """A rater that gives every response ``score`` (even one off the rubric's scale)."""

    def rater(_prompt: Text, _response: Text, _rubric: Rubric) -> int:
        return score

    return rater


@dataclass
class Script:
    """What a :class:`ScriptedJudge` does: a policy, a rater, and failures to raise first.

    ``failures`` are raised, in order, by the next calls of either kind;
    ``shown`` and ``rated`` record what the judge was asked about.
    """

    policy: Policy = prefer_longer
    rater: Rater = rate_by_length
    failures: list[JudgeError] = field(default_factory=list)
    shown: list[ShownPair] = field(default_factory=list)
    rated: list[tuple[Text, Text]] = field(default_factory=list)


class ScriptedJudge(Judge):
    """An in-process judge whose answers come from a policy function."""

    provider = "scripted"

    def __init__(self, config: JudgeConfig, script: Script | None = None) -> None:
        super().__init__(config)
        self.script = script or Script()

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        self.script.shown.append(shown)
        if self.script.failures:
            raise self.script.failures.pop(0)
        position = self.script.policy(shown)
        raw = f'{{"winner": "{position.value}"}}'
        return RawAnswer(PairwiseAnswer(position, f"scripted: {position.value}"), raw, Usage(10, 5))

    async def rate(self, prompt: Text, response: Text, rubric: Rubric) -> RawRating:
        self.script.rated.append((prompt, response))
        if self.script.failures:
            raise self.script.failures.pop(0)
        score = self.script.rater(prompt, response, rubric)
        obj = {"rationale": f"scripted: {score}", "score": score}
        raw = json_dumps_compact(obj)
        try:
            answer = parse_rating_object(obj, raw, rubric)
        except JudgeError as exc:
            exc.usage = Usage(10, 5)  # as a real backend does: the failed call still cost
            raise
        return RawRating(answer, raw, Usage(10, 5))
