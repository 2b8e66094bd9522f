"""Strict parsers for judge answers.

Structured output (a forced tool call, a strict JSON schema) is the normal
path; the text format is the documented fallback for servers without it:
the answer's last non-empty line must be exactly ``Verdict: 1``,
``Verdict: 2`` or ``Verdict: tie`` for a comparison, ``Score: N`` for a
rating. Anything else is unparseable: we never guess a label from prose,
and a score off the rubric's scale is never clamped onto it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from judges.errors import UnparseableError
from judges.rubrics import Rubric
from judges.types import PairwiseAnswer, Position, PositionProbabilities, RatingAnswer

TEXT_FORMAT_INSTRUCTIONS = (
    "Write your comparison, then end your answer with one line that is exactly "
    "'Verdict: 1', 'Verdict: 2' or 'Verdict: tie' and nothing after it."
)
_VERDICT_LINE = re.compile(r"Verdict: (1|2|tie)")
RATING_TEXT_FORMAT_INSTRUCTIONS = (
    "Write your assessment, then end your answer with one line that is exactly "
    "'Score: N', where N is your score as a whole number on the scale given above, "
    "and nothing after it."
)
_SCORE_LINE = re.compile(r"Score: (-?\d+)")


def parse_verdict_object(obj: object, raw_output: str) -> PairwiseAnswer:
    """Validate a structured verdict (tool input or JSON object)."""
    if not isinstance(obj, Mapping):
        raise UnparseableError("verdict is not a JSON object", raw_output=raw_output)
    winner = obj.get("winner")
    rationale = obj.get("rationale", "")
    if winner not in ("1", "2", "tie"):
        raise UnparseableError(
            f"verdict field 'winner' must be '1', '2' or 'tie', got {winner!r}",
            raw_output=raw_output,
        )
    if not isinstance(rationale, str):
        raise UnparseableError("verdict field 'rationale' must be a string", raw_output=raw_output)
    return PairwiseAnswer(position=Position(winner), rationale=rationale)


def parse_verdict_json(text: str) -> PairwiseAnswer:
    """Parse a JSON-schema answer given as a string."""
    return parse_verdict_object(load_json(text), text)


def parse_verdict_text(text: str) -> PairwiseAnswer:
    """Parse the text fallback format: a final ``Verdict: X`` line."""
    match, rationale = final_line(
        text, _VERDICT_LINE, "'Verdict: 1', 'Verdict: 2' or 'Verdict: tie'"
    )
    return PairwiseAnswer(position=Position(match.group(1)), rationale=rationale)


def parse_rating_object(obj: object, raw_output: str, rubric: Rubric) -> RatingAnswer:
    """Validate a structured rating (tool input or JSON object) against the rubric's scale."""
    if not isinstance(obj, Mapping):
        raise UnparseableError("rating is not a JSON object", raw_output=raw_output)
    missing = [name for name in ("rationale", "score") if name not in obj]
    if missing:
        raise UnparseableError(
            f"rating field(s) {', '.join(map(repr, missing))} missing", raw_output=raw_output
        )
    rationale = obj["rationale"]
    if not isinstance(rationale, str):
        raise UnparseableError("rating field 'rationale' must be a string", raw_output=raw_output)
    return RatingAnswer(score=_checked_score(obj["score"], raw_output, rubric), rationale=rationale)


def parse_rating_json(text: str, rubric: Rubric) -> RatingAnswer:
    """Parse a JSON-schema rating given as a string."""
    return parse_rating_object(load_json(text), text, rubric)


def parse_rating_text(text: str, rubric: Rubric) -> RatingAnswer:
    """Parse the rating text fallback: a final ``Score: N`` line, N on the rubric's scale."""
    match, rationale = final_line(text, _SCORE_LINE, "'Score: N'")
    return RatingAnswer(_checked_score(int(match.group(1)), text, rubric), rationale)


def _checked_score(score: object, raw_output: str, rubric: Rubric) -> int:
    scale = f"{rubric.scale_min}-{rubric.scale_max}"
    # A float with an integral value (7.0) is how some models and JSON
    # encoders write an integer; 7.5 is a different answer, never rounded.
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if not isinstance(score, int) or isinstance(score, bool):
        raise UnparseableError(
            f"rating score {score!r} is not an integer on the scale {scale}",
            raw_output=raw_output,
        )
    if not rubric.scale_min <= score <= rubric.scale_max:
        raise UnparseableError(
            f"rating score {score} is outside the scale {scale}", raw_output=raw_output
        )
    return score


def load_json(text: str) -> object:
    """``json.loads``, failing as :class:`UnparseableError` with the raw text kept."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnparseableError(f"answer is not valid JSON: {exc}", raw_output=text) from None


def final_line(text: str, pattern: re.Pattern[str], expected: str) -> tuple[re.Match[str], str]:
    """Match the last non-empty line; everything before it is the rationale."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise UnparseableError("empty answer", raw_output=text)
    match = pattern.fullmatch(lines[-1])
    if match is None:
        raise UnparseableError(f"the last line is not {expected}", raw_output=text)
    return match, "\n".join(lines[:-1])


def probabilities_from_top_logprobs(
    top: Sequence[tuple[str, float]],
) -> PositionProbabilities | None:
    """Turn the alternatives at the verdict token into position probabilities.

    Tokens are compared after stripping quotes and blanks, since tokenizers
    may glue a quote to the value. Returns ``None`` when neither position
    appears among the alternatives (nothing to normalise).
    """
    mass = {"1": 0.0, "2": 0.0, "tie": 0.0}
    for token, logprob in top:
        key = token.strip().strip('"').strip().lower()
        if key in mass:
            mass[key] += math.exp(logprob)
    total = sum(mass.values())
    if mass["1"] == 0.0 and mass["2"] == 0.0:
        return None
    return PositionProbabilities(
        first=mass["1"] / total, second=mass["2"] / total, tie=mass["tie"] / total
    )


def winner_token_index(tokens: Sequence[str], content: str) -> int | None:
    """Index of the token that carries the verdict value in a JSON answer.

    Finds where the value of ``"winner"`` starts in ``content`` and returns
    the token whose span covers that character.
    """
    match = re.search(r'"winner"\s*:\s*"', content)
    if match is None:
        return None
    target = match.end()
    offset = 0
    for index, token in enumerate(tokens):
        end = offset + len(token)
        if offset <= target < end:
            return index
        offset = end
    return None


def json_dumps_compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
