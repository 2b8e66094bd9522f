"""Reading pair files line by line, with errors that say file, line and field.

JSONL (optionally gzip-compressed) is streamed: memory does not grow with
the file. A file that is one JSON array (PandaLM, LLMBar) is read whole;
its "line" numbers are the array positions, starting at 1.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from app.labeling.inputs import LabeledPairIn
from app.labeling.shapes import Document, ShapeError


@dataclass(frozen=True, slots=True)
class LineError:
    source: str
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


RecordT = TypeVar("RecordT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Parsed(Generic[RecordT]):
    """One valid record and the line (or array position) it came from."""

    line: int
    record: RecordT


@dataclass(frozen=True, slots=True)
class ParsedLine:
    line: int
    pair: LabeledPairIn


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


def open_input(path: str) -> IO[str]:
    """A text stream for a path, ``-`` (stdin) or a ``.gz`` file."""
    if path == "-":
        return sys.stdin
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


_UNPARSED = object()
"""Stands for a JSONL line not parsed yet: a model may validate its text directly."""


def _documents(stream: IO[str]) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw text, parsed JSON or _UNPARSED) for each non-blank line or array item."""
    first, skipped = "", 0
    for first in stream:
        if first.strip():
            break
        skipped += 1
    if first.lstrip().startswith("["):
        text = first + stream.read()
        try:
            array = json.loads(text)
        except json.JSONDecodeError as exc:
            yield exc.lineno, "", exc
            return
        for index, item in enumerate(array, start=1):
            yield index, json.dumps(item, ensure_ascii=False), item
        return
    for number, line in enumerate(_chain(first, stream), start=skipped + 1):
        if line.strip():
            yield number, line, _UNPARSED


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return exc


def _chain(first: str, stream: IO[str]) -> Iterator[str]:
    # The first non-blank line was consumed to sniff the format: put it back.
    yield first
    yield from stream


def read_pairs(
    stream: IO[str], source: str, convert: Callable[[Document], Document] | None = None
) -> Iterator[ParsedLine | LineError]:
    """Yield each record as a canonical pair or an error; a bad record never stops the rest."""
    for item in read_records(stream, source, LabeledPairIn, convert):
        yield item if isinstance(item, LineError) else ParsedLine(item.line, item.record)


def read_records(
    stream: IO[str],
    source: str,
    model: type[RecordT],
    convert: Callable[[Document], Document] | None = None,
) -> Iterator[Parsed[RecordT] | LineError]:
    """Yield each record validated as ``model``, or an error naming its line and field.

    A JSONL line with no shape to convert is validated straight from its
    text (pydantic's parser, a third faster); a line that fails is parsed
    again the slow way so its error says what and where as always.
    """
    for number, text, parsed in _documents(stream):
        if parsed is _UNPARSED and convert is None:
            try:
                yield Parsed(number, model.model_validate_json(text))
                continue
            except ValidationError:
                pass
        document = _parse(text) if parsed is _UNPARSED else parsed
        if isinstance(document, json.JSONDecodeError):
            yield LineError(
                source, number, f"invalid JSON: {document.msg} (column {document.colno})", text
            )
            continue
        if not isinstance(document, dict):
            yield LineError(source, number, "expected a JSON object", text)
            continue
        try:
            canonical = convert(document) if convert else document
            yield Parsed(number, model.model_validate(canonical))
        except ShapeError as exc:
            yield LineError(source, number, str(exc), text)
        except KeyError as exc:
            yield LineError(source, number, f"field {exc.args[0]!r}: Field required", text)
        except ValidationError as exc:
            yield LineError(source, number, describe_validation_error(exc), text)
