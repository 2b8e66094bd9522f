"""What every string, JSON value and time from outside must be before it is judged or stored.

PostgreSQL text and JSONB cannot hold a NUL character; no driver can encode
a lone surrogate (U+D800-U+DFFF, e.g. a JSON ``"\\ud800"``) as UTF-8; JSONB
refuses NaN and Infinity; a time with an offset near year 1 or 9999 does
not exist in UTC. Each of these used to pass validation, get judged (and
paid for), then fail the insert with a 500. So the pydantic types here
refuse them at the boundary, naming the field; the HTTP bodies, the query
parameters and the file readers all validate through them.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from app.errors import InvalidInputError
from app.store import limits
from judges.jury import PairJudgeConfig

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_JSON_DEPTH = 64
"""Nesting allowed in free-form JSON (metadata): deeper is never data, and costs recursion."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found is not None:
            return (
                f"contains a lone surrogate (\\u{ord(found.group()):04x}), "
                "which is not valid Unicode (or bytes that are not UTF-8)"
            )
    return None


def check_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("text_unstorable", problem)
    return value


def json_problem(value: Any) -> str | None:
    """The first place in a JSON value that cannot be stored, and why; None when all can.

    Walked with an explicit stack, so a deep value costs no recursion.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"{path or 'value'}: nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, float) and not math.isfinite(item):
            problem = f"{item} is not a JSON number that can be stored"
        elif isinstance(item, dict):
            problem = None
            for key, child in item.items():
                key_problem = text_problem(key) if isinstance(key, str) else "keys are strings"
                if key_problem is not None:
                    return f"key {key!r} at {path or 'top level'}: {key_problem}"
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(item, list):
            problem = None
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            problem = None
        if problem is not None:
            return f"{path}: {problem}" if path else problem
    return None


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem is not None:
        raise PydanticCustomError("json_unstorable", problem)
    return value


def check_judge_fits(config: PairJudgeConfig) -> None:
    """Refuse a judge whose spec or label, as stored, is longer than its column (422).

    Checked after resolving, before any call: a jury's spec is written out
    in canonical form (``tie_margin=.1`` becomes ``tie_margin=0.1``), and a
    named judge's spec comes from the judges file, so either may be longer
    than what the caller sent.
    """
    for value in (config.spec, config.label):
        if len(value) > limits.JUDGE_SPEC:
            raise InvalidInputError(
                f"judge {value[:40]!r}... is {len(value)} characters written out; "
                f"a stored judge holds at most {limits.JUDGE_SPEC}",
                field="judge",
            )


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_json(model: type[ModelT], raw: bytes | str) -> ModelT:
    """``model.model_validate_json``, with an escaped lone surrogate blamed on its field.

    pydantic's JSON parser refuses ``"\ud800"`` as invalid JSON, naming
    only a column; the standard parser reads it, so validating its result
    names the field. Any other invalid JSON keeps pydantic's error.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if not any(e["type"] == "json_invalid" for e in exc.errors()):
            raise
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            raise exc from None
        return model.model_validate(document)


def to_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one, or one UTC cannot represent, is refused."""
    if value.tzinfo is None:
        raise PydanticCustomError(
            "datetime_naive", "needs a time zone, e.g. 2026-11-27T00:00:00Z"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "is out of range once converted to UTC"
        ) from None


_CHECK = AfterValidator(check_text)
CleanStr = Annotated[str, _CHECK]
"""Any text from outside: refuses NUL and lone surrogates."""
Metadata = Annotated[dict[str, Any], AfterValidator(check_json_object)]
"""Free-form JSON object: every key and string clean, numbers finite, nesting bounded."""
UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]
"""A time with its zone, converted to UTC (the store's columns are UTC)."""


# Bounded text: the length is checked first (cheap, and its message says
# "characters"), then the characters. Each bound is its column's length.
ExternalId = Annotated[str, StringConstraints(max_length=limits.EXTERNAL_ID), _CHECK]
JudgeSpec = Annotated[str, StringConstraints(max_length=limits.JUDGE_SPEC), _CHECK]
ConstitutionId = Annotated[str, StringConstraints(max_length=limits.CONSTITUTION_ID), _CHECK]
PrincipleId = Annotated[str, StringConstraints(max_length=limits.PRINCIPLE_ID), _CHECK]
SeedText = Annotated[str, StringConstraints(max_length=limits.SEED), _CHECK]
RubricName = Annotated[str, StringConstraints(max_length=limits.RUBRIC_NAME), _CHECK]
BatchName = Annotated[str, StringConstraints(max_length=limits.BATCH_NAME), _CHECK]
FeedbackText = Annotated[str, StringConstraints(max_length=limits.FEEDBACK_TEXT), _CHECK]
IdempotencyKey = Annotated[str, StringConstraints(max_length=limits.IDEMPOTENCY_KEY), _CHECK]
Reviewer = Annotated[str, StringConstraints(max_length=limits.REVIEWER), _CHECK]
ReviewNote = Annotated[str, StringConstraints(max_length=20_000), _CHECK]
Int32 = Annotated[int, Field(ge=-limits.INT32_MAX - 1, le=limits.INT32_MAX)]
"""Any value stored in an ``Integer`` column."""
