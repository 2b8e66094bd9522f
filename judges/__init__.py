"""Judges: models that compare, rate and critique responses.

Pure library code: no HTTP, no SQL. In: plain typed values and a judge
configuration. Out: typed results with the parsed decision, raw output,
token usage and latency, or a typed :class:`~judges.errors.JudgeError`.
"""

from judges.base import Judge, RawAnswer, RawRating
from judges.config import JudgeConfig, config_from_spec, parse_spec
from judges.errors import (
    JudgeConfigError,
    JudgeError,
    JudgeTimeoutError,
    MissingCredentialsError,
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
    CallRecord,
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
    ShownPair,
    Usage,
    Verdict,
    Winner,
)

__all__ = [
    "BUILTIN_RUBRICS",
    "ENTRY_POINT_GROUP",
    "CallRecord",
    "Judge",
    "JudgeConfig",
    "JudgeConfigError",
    "JudgeError",
    "JudgeRegistry",
    "JudgeTimeoutError",
    "Message",
    "MissingCredentialsError",
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
    "RawRating",
    "RefusedError",
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
    "get_rubric",
    "judge_pair",
    "load_named_judges",
    "parse_spec",
    "rate_response",
    "show",
    "winner_from_position",
]
