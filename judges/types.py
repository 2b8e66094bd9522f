"""Plain typed values that flow in and out of judges: verdicts, ratings, critiques, revisions.

Nothing here knows about HTTP or SQL. Positions ("1"/"2") are what a judge
saw; winners ("a"/"b") are what the caller sent. The two vocabularies never
mix: the only bridge is :func:`judges.protocol.winner_from_position`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

Role: TypeAlias = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


Conversation: TypeAlias = tuple[Message, ...]
Text: TypeAlias = str | Conversation
"""A prompt is a plain string or a conversation; a response is a string or
a one-message assistant conversation."""


class Order(enum.StrEnum):
    """The order in which a pair was shown to the judge."""

    AB = "ab"
    BA = "ba"


class Position(enum.StrEnum):
    """What a judge answered about the order it was shown."""

    FIRST = "1"
    SECOND = "2"
    TIE = "tie"


class Winner(enum.StrEnum):
    """The verdict in the caller's terms."""

    A = "a"
    B = "b"
    TIE = "tie"


class WorkedExample(Protocol):
    """A worked choice between two responses (``judges.cai.constitutions.PreferenceExample``)."""

    @property
    def prompt(self) -> Text: ...
    @property
    def response_a(self) -> str: ...
    @property
    def response_b(self) -> str: ...
    @property
    def choice(self) -> Literal["a", "b"]: ...
    @property
    def explanation(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Pair:
    """Two candidate responses to one prompt, in the caller's a/b terms."""

    prompt: Text
    response_a: Text
    response_b: Text
    # Out of repr: single-order judges pick the order from repr(pair), as before these existed.
    criteria: str | None = field(default=None, repr=False)
    """What to judge by, from the request (fenced like the texts judged)."""
    reference: Text | None = field(default=None, repr=False)
    """A reference answer the template shows the judge (MT-Bench's math and coding mode)."""
    examples: tuple[WorkedExample, ...] = field(default=(), repr=False)
    """Worked examples from where the pair is judged (a constitution's), for templates that
    show them."""


@dataclass(frozen=True, slots=True)
class ShownPair:
    """A pair as it is shown to a judge: first and second, no a/b."""

    prompt: Text
    first: Text
    second: Text
    criteria: str | None = None
    reference: Text | None = None
    examples: tuple[WorkedExample, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one model call consumed.

    ``truncated_tokens`` counts input tokens a local model dropped to fit its
    context (the call's answer saw a shortened prompt); run summaries tally it.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    truncated_tokens: int = 0


@dataclass(frozen=True, slots=True)
class PositionProbabilities:
    """The judge's probability for each position, from token log-probabilities.

    Normalised over the three choices, so they add up to 1.
    """

    first: float
    second: float
    tie: float


@dataclass(frozen=True, slots=True)
class PairwiseAnswer:
    """The parsed answer of one pairwise call, in positions."""

    position: Position
    rationale: str
    probabilities: PositionProbabilities | None = None


@dataclass(frozen=True, slots=True)
class RatingAnswer:
    """The parsed answer of one rating call: an integer on the rubric's scale."""

    score: int
    rationale: str


@dataclass(frozen=True, slots=True)
class CritiqueAnswer:
    """The parsed answer of one critique call: what is wrong, and whether to rewrite."""

    critique: str
    needs_revision: bool


@dataclass(frozen=True, slots=True)
class RevisionAnswer:
    """The parsed answer of one revision call: the rewritten response, preamble stripped."""

    revision: str


@dataclass(frozen=True, slots=True)
class GeneratedText:
    """The answer of one generation call: a response written to a prompt."""

    text: str


Answer: TypeAlias = PairwiseAnswer | RatingAnswer | CritiqueAnswer | RevisionAnswer | GeneratedText
"""Any parsed answer a :class:`CallRecord` can carry."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """Everything one model call left behind, successful or not.

    Exactly one of ``answer`` and ``error_class`` is set. ``order`` is the
    order a pair was shown in, ``None`` for a call about one response (a
    rating, critique, revision or generation: no order); ``answer`` is then
    a :class:`RatingAnswer`, :class:`CritiqueAnswer`, :class:`RevisionAnswer`
    or :class:`GeneratedText`.
    """

    order: Order | None
    attempt: int
    model: str
    template_version: str
    parameters: dict[str, Any]
    raw_output: str | None
    usage: Usage
    latency_ms: float
    answer: Answer | None = None
    error_class: str | None = None
    error_message: str | None = None
    trace_id: str | None = None
    """The OpenTelemetry trace the call's span is in (32 hex digits); None when tracing is off."""

    @property
    def succeeded(self) -> bool:
        return self.answer is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for a pair, in the caller's a/b terms.

    ``position_consistent`` is ``None`` when only one order was asked.
    ``soft_preference`` is P(a preferred over b), present only where the
    backend gave log-probabilities.
    """

    winner: Winner
    confidence: float | None
    position_consistent: bool | None
    soft_preference: float | None
    rationale: str


@dataclass(frozen=True, slots=True)
class PairOutcome:
    """What judging one pair produced: every call, and a verdict or an error."""

    calls: tuple[CallRecord, ...]
    verdict: Verdict | None
    error_class: str | None = None
    error_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rating:
    """The decision for one response: its score and whether it passes the rubric's threshold."""

    score: int
    passed: bool
    rationale: str


@dataclass(frozen=True, slots=True)
class RatingOutcome:
    """What rating one response produced: every call, and a rating or an error."""

    calls: tuple[CallRecord, ...]
    rating: Rating | None
    error_class: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class RevisionRound:
    """One finished critique → revision round.

    ``revision`` is ``None`` when the critique found nothing to fix (which
    ends the loop); otherwise it is the rewritten response, preamble
    stripped, that the next round critiques.
    """

    index: int
    principle_id: str
    critique: str
    needs_revision: bool
    revision: str | None


@dataclass(frozen=True, slots=True)
class RevisionOutcome:
    """What critiquing and revising one response produced.

    ``calls`` holds every attempt of every call; ``rounds`` the rounds that
    finished. ``final`` is the last revision when at least one was made and
    the loop ended without a failure, else ``None``. A failure keeps the
    finished rounds and sets the error: a critique or revision is never
    made up.
    """

    calls: tuple[CallRecord, ...]
    rounds: tuple[RevisionRound, ...]
    final: str | None
    error_class: str | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_class is None

    @property
    def revised(self) -> bool:
        """Whether the loop produced a final revision (false after a failure)."""
        return self.final is not None


@dataclass(frozen=True, slots=True)
class GenerationOutcome:
    """What generating one response produced: every call, and the text or an error."""

    calls: tuple[CallRecord, ...]
    text: str | None
    error_class: str | None = None
    error_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_class is None
