"""A pairwise judging template: the words of each part, how a request is laid out, the shots.

The user message is laid out in code, the words come from the template:
instructions (or a constitution's question), the criteria, the
conversation note, the fenced prompt, the reference, both fenced
responses, the closing line. Every fenced text is defused against every
fence tag the message uses (:mod:`judges.fencing`); a message without
criteria or reference is defused against the original four tags only, so
it is byte for byte what it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from judges.cai.constitutions import PreferenceExample
from judges.errors import JudgeConfigError
from judges.fencing import defuse_tags
from judges.prompts import FENCE_TAGS, render_text
from judges.types import ShownPair, Text, WorkedExample

CLOSING = "Record your verdict with the verdict tool or JSON format you were given."
DEFAULT_FEW_SHOT_TOKENS = 1500


def estimate_tokens(text: str) -> int:
    """Tokens of a text as estimated everywhere here: a quarter of its characters, rounded up.

    Real tokenizers give 3.5-4.5 characters per token on English; the
    estimate bounds a budget, not a bill.
    """
    return -(-len(text) // 4)


@dataclass(frozen=True)
class PairwiseTemplate:
    """A pairwise judging prompt: the words of each part, and the ref verdicts store.

    ``version`` is the ref (the name ``template_version`` columns and label
    keys hold); ``file_version`` is the file's own ``version``.
    """

    version: str
    system: str
    instructions: str
    closing: str = CLOSING
    criteria: str | None = None
    reference: str | None = None
    conversation: str | None = None
    preference_examples: tuple[PreferenceExample, ...] = ()
    few_shot_tokens: int = DEFAULT_FEW_SHOT_TOKENS
    constitution_examples: bool = False
    """Also show the ``preference_examples`` of the constitution a pair is judged under."""
    id: str = ""
    file_version: str = ""
    description: str = ""
    content_hash: str = ""

    @property
    def ref(self) -> str:
        return self.version

    def missing(self, *, criteria: bool, reference: bool) -> list[str]:
        """The inputs a pair carries that this template has no words for."""
        wanted = {"criteria": criteria, "reference": reference}
        return [k for k, given in wanted.items() if given and getattr(self, k) is None]

    def render(self, shown: ShownPair, question: str | None = None) -> tuple[str, str]:
        """Return (system, user) texts for one order of one pair."""
        tags = _tags(shown)
        parts = [
            # A question (a constitution principle's) is the operator's, not fenced
            # data, but it must not be able to open or close a fence either.
            defuse_tags(question, tags) if question else self.instructions
        ]
        if shown.criteria is not None:
            parts += [_words(self, "criteria"), _fence("criteria", shown.criteria, tags)]
        if self.conversation is not None and is_multi_turn(shown.prompt):
            parts.append(self.conversation)
        parts.append(_fence("prompt", shown.prompt, tags))
        if shown.reference is not None:
            parts += [_words(self, "reference"), _fence("reference", shown.reference, tags)]
        parts += [
            _fence("response_1", shown.first, tags),
            _fence("response_2", shown.second, tags),
            self.closing,
        ]
        return self.system, "\n\n".join(parts)

    def shots(self, shown: ShownPair) -> list[tuple[str, str]]:
        """The worked examples as (user, assistant) turns to show before the request.

        The template's examples, then (with ``constitution_examples``) the
        pair's, in order while their estimated tokens fit ``few_shot_tokens``.
        """
        examples: list[WorkedExample] = [*self.preference_examples]
        if self.constitution_examples:
            examples += shown.examples
        turns: list[tuple[str, str]] = []
        spent = 0
        for index, example in enumerate(examples):
            turn = self._shot(example, preferred_first=index % 2 == 0)
            spent += estimate_tokens(turn[0]) + estimate_tokens(turn[1])
            if spent > self.few_shot_tokens:
                break
            turns.append(turn)
        return turns

    def shot_tokens(self, shown: ShownPair) -> int:
        """The estimated tokens of the worked examples a call about ``shown`` sends."""
        return sum(
            estimate_tokens(user) + estimate_tokens(answer) for user, answer in self.shots(shown)
        )

    def _shot(self, example: WorkedExample, *, preferred_first: bool) -> tuple[str, str]:
        """One example laid out like a request, the preferred answer first or second.

        Alternating the side the preferred answer is shown on keeps the
        examples from teaching a position.
        """
        a, b = example.response_a, example.response_b
        preferred, other = (a, b) if example.choice == "a" else (b, a)
        first, second = (preferred, other) if preferred_first else (other, preferred)
        _, user = self.render(ShownPair(example.prompt, first, second))
        verdict = {
            "rationale": example.explanation or "",
            "winner": "1" if preferred_first else "2",
        }
        return user, json.dumps(verdict, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """The file's content as plain values (what the content hash covers)."""
        data = self._content()
        if self.constitution_examples:  # left out when off: the hashes of older files stand
            data["constitution_examples"] = True
        return data

    def _content(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.file_version,
            "description": self.description,
            "system": self.system,
            "instructions": self.instructions,
            "closing": self.closing,
            "criteria": self.criteria,
            "reference": self.reference,
            "conversation": self.conversation,
            "preference_examples": [e.to_dict() for e in self.preference_examples],
            "few_shot_tokens": self.few_shot_tokens,
        }


def prior_turns(shots: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Worked examples as chat messages: each a user turn, then the judge's answer."""
    return [
        message
        for user, answer in shots
        for message in ({"role": "user", "content": user}, {"role": "assistant", "content": answer})
    ]


def is_multi_turn(prompt: Text) -> bool:
    """Whether a prompt is a conversation with an earlier assistant turn."""
    return not isinstance(prompt, str) and any(m.role == "assistant" for m in prompt)


def _tags(shown: ShownPair) -> tuple[str, ...]:
    extra = ("criteria",) * (shown.criteria is not None)
    return FENCE_TAGS + extra + ("reference",) * (shown.reference is not None)


def _fence(tag: str, value: Text, tags: tuple[str, ...]) -> str:
    return f"<{tag}>\n{defuse_tags(render_text(value), tags)}\n</{tag}>"


def _words(template: PairwiseTemplate, part: str) -> str:
    words: str | None = getattr(template, part)
    if words is None:
        raise JudgeConfigError(f"template {template.ref!r} has no {part!r} section")
    return words


def content_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
