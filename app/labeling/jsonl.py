"""Reading JSONL input line by line, with errors that say file, line and field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from pydantic import ValidationError

from app.labeling.inputs import PairIn


@dataclass(frozen=True, slots=True)
class LineError:
    source: str
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ParsedLine:
    line: int
    pair: PairIn


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field once: ``field 'response_a': Field required``.

    A union field (string or messages) fails once per alternative; only the
    first message per field is kept, so the line stays readable.
    """
    by_field: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "line"
        by_field.setdefault(field, error["msg"])
    return "; ".join(f"field {field!r}: {message}" for field, message in by_field.items())


def parse_pair(document: Any) -> PairIn:
    return PairIn.model_validate(document)


def read_pairs(stream: IO[str], source: str) -> Iterator[ParsedLine | LineError]:
    """Yield each non-blank line as a parsed pair or an error; never reads the whole file."""
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            yield LineError(source, number, f"invalid JSON: {exc.msg} (column {exc.colno})", text)
            continue
        if not isinstance(document, dict):
            yield LineError(source, number, "expected a JSON object", text)
            continue
        try:
            yield ParsedLine(number, parse_pair(document))
        except ValidationError as exc:
            yield LineError(source, number, describe_validation_error(exc), text)
