"""Pairs not worth a model call: flagged before anything is paid for.

An empty (or whitespace-only) prompt or response gives a judge nothing to
decide; two identical responses have only one possible honest answer. By
default an empty text is refused and identical responses are stored as a
tie decided by this rule, without a judge call. Each is configurable
(``REFEREE_EMPTY_TEXTS``, ``REFEREE_IDENTICAL_RESPONSES``, or ``--empty`` /
``--identical`` on ``referee label``); the empty rule also holds for
``referee rate`` and ``referee revise`` and their routes (``--empty`` there too).

A rule's tie is told apart from a judge's by its ``template_version``
(``rule:identical-responses``), by having no judge calls, and by its own
label key: judging the same pair later with ``--identical judge`` makes a
separate comparison instead of reusing the rule's tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from app.errors import InvalidInputError
from app.keys import KEY_SCHEMA_VERSION, document_key
from app.labeling.inputs import PairIn
from judges.jury import PairJudgeConfig
from judges.types import Text

IdenticalPolicy = Literal["tie", "judge", "reject"]
EmptyPolicy = Literal["reject", "judge"]
RULE_TEMPLATE = "rule:identical-responses"
RULE_RATIONALE = (
    "The two responses are identical, so neither can be preferred: stored as a tie by "
    "rule, without a judge call (identical responses policy: tie)."
)


@dataclass(frozen=True, slots=True)
class TextPolicy:
    """What to do with identical responses and with empty texts."""

    identical: IdenticalPolicy = "tie"
    empty: EmptyPolicy = "reject"

    @classmethod
    def parse(cls, identical: str, empty: str) -> TextPolicy:
        """From user-given words; an unknown word is a clean error naming the choices."""
        if identical not in get_args(IdenticalPolicy):
            raise InvalidInputError(
                f"identical responses: {identical!r} is not one of tie, judge, reject",
                field="identical",
            )
        if empty not in get_args(EmptyPolicy):
            raise InvalidInputError(
                f"empty texts: {empty!r} is not one of reject, judge", field="empty"
            )
        return cls(identical, empty)  # type: ignore[arg-type]


def _plain(text: Text) -> str:
    return text if isinstance(text, str) else "\n".join(m.content for m in text)


def screen_empty(texts: dict[str, Text], empty: EmptyPolicy) -> None:
    """Refuse the first empty or whitespace-only text, naming its field (unless ``judge``).

    Pairs, ratings and revisions all go through here, so one setting
    (``REFEREE_EMPTY_TEXTS`` / ``--empty``) governs every paid call.
    """
    if empty == "judge":
        return
    for field, value in texts.items():
        if not _plain(value).strip():
            raise InvalidInputError(
                f"field {field!r}: empty or whitespace only; nothing to judge "
                "(--empty judge / REFEREE_EMPTY_TEXTS=judge to send it anyway)",
                field=field,
            )


def screen_pair(pair: PairIn, policy: TextPolicy) -> Literal["judge", "tie"]:
    """``judge`` or ``tie`` (by rule); raises InvalidInputError naming the field to refuse it."""
    texts = pair.to_pair()
    screen_empty(
        {"prompt": texts.prompt, "response_a": texts.response_a, "response_b": texts.response_b},
        policy.empty,
    )
    if _plain(texts.response_a) != _plain(texts.response_b) or policy.identical == "judge":
        return "judge"
    if policy.identical == "reject":
        raise InvalidInputError(
            "field 'response_b': identical to response_a; nothing to judge "
            "(--identical tie|judge / REFEREE_IDENTICAL_RESPONSES to keep it)",
            field="response_b",
        )
    return "tie"


def rule_key(stored_pair: dict[str, Any], judge: PairJudgeConfig, constitution: str | None) -> str:
    """The label key of a tie by rule: apart from the judge's key for the same pair."""
    document = {
        "v": KEY_SCHEMA_VERSION,
        "pair": stored_pair,
        "judge": judge.fingerprint(),
        "constitution": constitution,
        "rule": "identical-responses",
    }
    return document_key(document)


def rule_verdict(lengths: dict[str, int]) -> dict[str, Any]:
    """The verdict row of a tie by rule: no confidence or soft preference, no judge behind it."""
    return {
        "winner": "tie",
        "confidence": None,
        "position_consistent": None,
        "soft_preference": None,
        "rationale": RULE_RATIONALE,
        "principles": None,
        **lengths,
    }
