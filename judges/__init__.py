"""Judges: models that compare, rate and critique responses.

Pure library code: no HTTP, no SQL. In: plain typed values and a judge
configuration. Out: typed results with the parsed decision, raw output,
token usage and latency, or a typed :class:`~judges.errors.JudgeError`.

The modules here are the core every call goes through (the backend
contract, the both-orders protocol, prompts, parsing, errors, the
registry); ``backends/`` holds the providers and ``cai/`` the
constitutional-AI part. This package exports what callers and backend
authors use; anything else is imported from its module.
"""

from judges.base import Judge, RawAnswer, RawCritique, RawGenerated, RawRating, RawRevision
from judges.cai.protocol import generate_response, judge_pair_with_principles, revise_response
from judges.config import JudgeConfig, config_from_spec
from judges.errors import (
    JudgeConfigError,
    JudgeError,
    JudgeTimeoutError,
    MissingCredentialsError,
    ModelUnavailableError,
    RateLimitedError,
    RefusedError,
    TransientJudgeError,
    UnknownJudgeError,
    UnparseableError,
)
from judges.protocol import combine, judge_pair, rate_response, show, winner_from_position
from judges.registry import ENTRY_POINT_GROUP, JudgeRegistry, load_named_judges
from judges.rubrics import BUILTIN_RUBRICS, Rubric, get_rubric
from judges.types import (
    Answer,
    CallRecord,
    CritiqueAnswer,
    GeneratedText,
    GenerationOutcome,
    Message,
    Order,
    Pair,
    PairOutcome,
    PairwiseAnswer,
    Position,
    PositionProbabilities,
    Rating,
    RatingAnswer,
    RatingOutcome,
    RevisionAnswer,
    RevisionOutcome,
    RevisionRound,
    ShownPair,
    Usage,
    Verdict,
    Winner,
)

__all__ = [
    "BUILTIN_RUBRICS",
    "ENTRY_POINT_GROUP",
    "Answer",
    "CallRecord",
    "CritiqueAnswer",
    "GeneratedText",
    "GenerationOutcome",
    "Judge",
    "JudgeConfig",
    "JudgeConfigError",
    "JudgeError",
    "JudgeRegistry",
    "JudgeTimeoutError",
    "Message",
    "MissingCredentialsError",
    "ModelUnavailableError",
    "Order",
    "Pair",
    "PairOutcome",
    "PairwiseAnswer",
    "Position",
    "PositionProbabilities",
    "RateLimitedError",
    "Rating",
    "RatingAnswer",
    "RatingOutcome",
    "RawAnswer",
    "RawCritique",
    "RawGenerated",
    "RawRating",
    "RawRevision",
    "RefusedError",
    "RevisionAnswer",
    "RevisionOutcome",
    "RevisionRound",
    "Rubric",
    "ShownPair",
    "TransientJudgeError",
    "UnknownJudgeError",
    "UnparseableError",
    "Usage",
    "Verdict",
    "Winner",
    "combine",
    "config_from_spec",
    "generate_response",
    "get_rubric",
    "judge_pair",
    "judge_pair_with_principles",
    "load_named_judges",
    "rate_response",
    "revise_response",
    "show",
    "winner_from_position",
]
