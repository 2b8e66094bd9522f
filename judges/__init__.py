"""Judges: models that compare, rate and critique responses.

Pure library code: no HTTP, no SQL. In: plain typed values and a judge
configuration. Out: typed results with the parsed decision, raw output,
token usage and latency, or a typed :class:`~judges.errors.JudgeError`.
"""

from judges.base import Judge, RawAnswer
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
from judges.protocol import combine, judge_pair, show, winner_from_position
from judges.registry import ENTRY_POINT_GROUP, JudgeRegistry, load_named_judges
from judges.types import (
    CallRecord,
    Message,
    Order,
    Pair,
    PairOutcome,
    PairwiseAnswer,
    Position,
    PositionProbabilities,
    ShownPair,
    Usage,
    Verdict,
    Winner,
)

__all__ = [
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
    "RawAnswer",
    "RefusedError",
    "ShownPair",
    "TransientJudgeError",
    "UnknownJudgeError",
    "UnparseableError",
    "Usage",
    "Verdict",
    "Winner",
    "combine",
    "config_from_spec",
    "judge_pair",
    "load_named_judges",
    "parse_spec",
    "show",
    "winner_from_position",
]
