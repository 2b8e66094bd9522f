"""Test doubles for judges, public so plugins and pipelines can test against them.

:class:`ScriptedJudge` decides in process from what it is shown, through a
policy function, and goes through the same registry and protocol as a real
backend::

    registry.register("scripted", lambda config: ScriptedJudge(config, prefer_longer))

Ratings come from a rater function the same way, and go through the same
scale check as a real backend's, so a rater returning 11 on a 1-10 rubric
fails as unparseable just as a model answering 11 would. Critiques,
revisions and generations come from a critic, a reviser and a generator,
through the same parsers too: the default reviser answers with a preamble
("Sure, here is a revised response:") that the revision parser strips, as
it would a model's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from judges.base import Judge, RawAnswer, RawCritique, RawGenerated, RawRating, RawRevision
from judges.cai.constitutions import CritiqueExample, Principle
from judges.cai.parsing import parse_critique_object, parse_generated, parse_revision_object
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.parsing import json_dumps_compact, parse_rating_object
from judges.prompts import as_messages, render_text
from judges.rubrics import Rubric
from judges.types import PairwiseAnswer, Position, ShownPair, Text, Usage

Policy = Callable[[ShownPair], Position]
Rater = Callable[[Text, Text, Rubric], int]
Critic = Callable[[Text, Text, Principle], tuple[str, bool]]
Reviser = Callable[[Text, Text, Principle, str], str]
Generator = Callable[[Text], str]
_In = TypeVar("_In")
_Out = TypeVar("_Out")


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


UNSAFE_MARKER = "UNSAFE"
REVISION_PREAMBLE = "Sure, here is a revised response:\n\n"


def flag_marker(_prompt: Text, response: Text, principle: Principle) -> tuple[str, bool]:
    """Ask for a revision when the response contains ``UNSAFE``, naming the principle."""
    if UNSAFE_MARKER in render_text(response):
        return f"Under {principle.id}: the response contains {UNSAFE_MARKER} content.", True
    return f"Under {principle.id}: nothing to fix.", False


def remove_marker(_prompt: Text, response: Text, _principle: Principle, _critique: str) -> str:
    """The response without ``UNSAFE``, announced by a preamble the parser must strip."""
    cleaned = " ".join(render_text(response).replace(UNSAFE_MARKER, "").split())
    return REVISION_PREAMBLE + cleaned


def echo_prompt(prompt: Text) -> str:
    """A deterministic answer that quotes the prompt's last turn."""
    return f"An answer to: {as_messages(prompt)[-1].content}"


@dataclass
class Script:
    """What a :class:`ScriptedJudge` does, and what it was asked.

    A policy (comparisons), a rater (ratings), a critic, a reviser and a
    generator; ``failures`` are raised, in order, by the next calls of any
    kind. ``shown`` (with ``questions``), ``rated``, ``critiqued``
    (prompt, response, principle id), ``revised`` (the same plus the
    critique) and ``generated`` record what the judge was asked about.
    """

    policy: Policy = prefer_longer
    rater: Rater = rate_by_length
    critic: Critic = flag_marker
    reviser: Reviser = remove_marker
    generator: Generator = echo_prompt
    failures: list[JudgeError] = field(default_factory=list)
    shown: list[ShownPair] = field(default_factory=list)
    questions: list[str | None] = field(default_factory=list)
    rated: list[tuple[Text, Text]] = field(default_factory=list)
    critiqued: list[tuple[Text, Text, str]] = field(default_factory=list)
    revised: list[tuple[Text, Text, str, str]] = field(default_factory=list)
    generated: list[Text] = field(default_factory=list)


class ScriptedJudge(Judge):
    """An in-process judge whose answers come from a policy function."""

    provider = "scripted"

    def __init__(self, config: JudgeConfig, script: Script | None = None) -> None:
        super().__init__(config)
        self.script = script or Script()

    async def answer(self, shown: ShownPair, question: str | None = None) -> RawAnswer:
        self.script.shown.append(shown)
        self.script.questions.append(question)
        self._fail_if_scripted()
        position = self.script.policy(shown)
        raw = f'{{"winner": "{position.value}"}}'
        return RawAnswer(PairwiseAnswer(position, f"scripted: {position.value}"), raw, Usage(10, 5))

    async def rate(self, prompt: Text, response: Text, rubric: Rubric) -> RawRating:
        self.script.rated.append((prompt, response))
        self._fail_if_scripted()
        score = self.script.rater(prompt, response, rubric)
        obj = {"rationale": f"scripted: {score}", "score": score}
        raw = json_dumps_compact(obj)
        answer = _parsed(lambda o, r: parse_rating_object(o, r, rubric), obj, raw)
        return RawRating(answer, raw, Usage(10, 5))

    async def critique(
        self,
        prompt: Text,
        response: Text,
        principle: Principle,
        examples: Sequence[CritiqueExample] = (),
    ) -> RawCritique:
        self.script.critiqued.append((prompt, response, principle.id))
        self._fail_if_scripted()
        critique, needs_revision = self.script.critic(prompt, response, principle)
        obj = {"critique": critique, "needs_revision": needs_revision}
        raw = json_dumps_compact(obj)
        return RawCritique(_parsed(parse_critique_object, obj, raw), raw, Usage(10, 5))

    async def revise(
        self,
        prompt: Text,
        response: Text,
        principle: Principle,
        critique: str,
        examples: Sequence[CritiqueExample] = (),
    ) -> RawRevision:
        self.script.revised.append((prompt, response, principle.id, critique))
        self._fail_if_scripted()
        obj = {"revision": self.script.reviser(prompt, response, principle, critique)}
        raw = json_dumps_compact(obj)
        return RawRevision(_parsed(parse_revision_object, obj, raw), raw, Usage(10, 5))

    async def generate(self, prompt: Text) -> RawGenerated:
        self.script.generated.append(prompt)
        self._fail_if_scripted()
        text = self.script.generator(prompt)
        return RawGenerated(_parsed(parse_generated, text, text), text, Usage(10, 5))

    def _fail_if_scripted(self) -> None:
        if self.script.failures:
            raise self.script.failures.pop(0)


def _parsed(parse: Callable[[_In, str], _Out], obj: _In, raw: str) -> _Out:
    """Parse as a real backend does: a call that fails to parse still cost its tokens."""
    try:
        return parse(obj, raw)
    except JudgeError as exc:
        exc.usage = Usage(10, 5)
        raise
