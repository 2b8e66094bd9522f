"""Test doubles for judges, public so plugins and pipelines can test against them.

:class:`ScriptedJudge` decides in process from what it is shown, through a
policy function, and goes through the same registry and protocol as a real
backend::

    registry.register("scripted", lambda config: ScriptedJudge(config, prefer_longer))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from judges.base import Judge, RawAnswer
from judges.config import JudgeConfig
from judges.errors import JudgeError
from judges.prompts import render_text
from judges.types import PairwiseAnswer, Position, ShownPair, Usage

Policy = Callable[[ShownPair], Position]


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


@dataclass
class Script:
    """What a :class:`ScriptedJudge` does: a policy, and failures to raise first."""

    policy: Policy = prefer_longer
    failures: list[JudgeError] = field(default_factory=list)
    shown: list[ShownPair] = field(default_factory=list)


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
