"""Reading record files line by line, with errors that say file, line and field.

JSONL (optionally gzip-compressed) is streamed: memory does not grow with
the file. A file that is one JSON array (PandaLM, LLMBar) is read whole;
its "line" numbers are the array positions, starting at 1.

Every line is checked on its own: whatever is wrong with it (bytes that are
not UTF-8, broken JSON, a NUL or a lone surrogate no database stores, a
field of the wrong type, a shape it does not fit) becomes one ``LineError``
naming the line and the field, and the lines around it are read as usual.
The rules for the values themselves are the models' (app.labeling.text_rules).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError

from app.errors import RefereeError
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


def rejected(source: str, line: int, exc: RefereeError) -> LineError:
    """The reject of a line whose check raised ``exc``: its field named first, as a reader's are."""
    field = exc.details.get("field")
    named = exc.message.startswith("field ") or field is None
    reason = exc.message if named else f"field {field!r}: {exc.message}"
    return LineError(source, line, reason, "")


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


# A pydantic error location holds field names, list positions and, for a
# union, the alternative tried ("str", "list[MessageIn]", "function-after[…]").
_UNION_TAG = re.compile(r"^[A-Z]|[\[(]|^(str|int|float|bool|dict|list|none)$")


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not _UNION_TAG.search(part):
            path += f".{part}" if path else part
    return path or "line"


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field once: ``field 'prompt[0].role': Input should be …``.

    A union field (string or messages) fails once per alternative. The error
    that got deepest into the value says what is wrong (a message's role, not
    "should be a string"), so that one is kept per top-level field.
    """
    chosen: dict[str, tuple[int, str, str]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _field_path(loc)
        top = re.split(r"[.\[]", path, maxsplit=1)[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        if top not in chosen or len(loc) > chosen[top][0]:
            chosen[top] = (len(loc), path, message)
    return "; ".join(f"field {path!r}: {message}" for _, path, message in chosen.values())


def open_input(path: str) -> IO[bytes]:
    """A byte stream for a path, ``-`` (stdin) or a ``.gz`` file; lines are decoded one by one."""
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


_UNPARSED = object()
"""Stands for a JSONL line not parsed yet: a model may validate its text directly."""


class _BadText(ValueError):
    """A line whose bytes or characters are not text a database can hold."""


def _text(raw: bytes | str) -> str:
    """A line as text: bytes decoded strictly, str checked to be encodable (no lone surrogates)."""
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadText(
                f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}"
            ) from None
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _BadText(
            f"a lone surrogate U+{ord(raw[exc.start]):04X} at column {exc.start + 1}"
        ) from None
    return raw


def _documents(stream: Iterable[bytes] | Iterable[str]) -> Iterator[tuple[int, str, Any]]:
    """(line number, text, parsed JSON, _UNPARSED or an error) per non-blank line or array item."""
    lines: Iterator[Any] = iter(stream)
    raw: Any = b""
    number = 0
    for raw in lines:
        number += 1
        if raw.strip():
            break
    else:
        return
    first = raw[3:] if isinstance(raw, bytes) and raw.startswith(b"\xef\xbb\xbf") else raw
    if first.lstrip()[:1] in ("[", b"["):
        yield from _array(first, lines)
        return
    for offset, line in enumerate(_chain(first, lines)):
        if not line.strip():
            continue
        try:
            yield number + offset, _text(line).lstrip("\ufeff"), _UNPARSED
        except _BadText as exc:
            shown = line.decode("utf-8", "replace") if isinstance(line, bytes) else repr(line)
            yield number + offset, shown, exc


def _array(first: Any, rest: Iterator[Any]) -> Iterator[tuple[int, str, Any]]:
    whole = first + (b"" if isinstance(first, bytes) else "").join(rest)
    try:
        array = json.loads(_text(whole))
    except _BadText as exc:
        yield 1, "", exc
        return
    except json.JSONDecodeError as exc:
        yield exc.lineno, "", exc
        return
    except RecursionError:
        yield 1, "", _BadText("invalid JSON: nested too deeply")
        return
    if not isinstance(array, list):
        yield 1, "", _BadText("expected a JSON array of objects, or one JSON object per line")
        return
    for index, item in enumerate(array, start=1):
        yield index, json.dumps(item, ensure_ascii=False), item


def _chain(first: Any, stream: Iterator[Any]) -> Iterator[Any]:
    # The first non-blank line was consumed to sniff the format: put it back.
    yield first
    yield from stream


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        return exc
    except RecursionError:
        return _BadText("invalid JSON: nested too deeply")


def _json_reason(exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string"):
        # json's "Unterminated string starting at" leaves the place to its position.
        what = f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") else exc.msg
        return f"invalid JSON: the line ends before the JSON value does (truncated?): {what}"
    return f"invalid JSON: {exc.msg} (column {exc.colno})"


# A line that may hold an escaped NUL or lone surrogate skips pydantic's JSON
# parser, whose error for a surrogate names no field: the text rule
# (app.labeling.text_rules) then refuses it with the field's name.
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def read_pairs(
    stream: Iterable[bytes] | Iterable[str],
    source: str,
    convert: Callable[[Document], Document] | None = None,
) -> Iterator[ParsedLine | LineError]:
    """Yield each record as a canonical pair or an error; a bad record never stops the rest."""
    for item in read_records(stream, source, LabeledPairIn, convert):
        yield item if isinstance(item, LineError) else ParsedLine(item.line, item.record)


def read_records(
    stream: Iterable[bytes] | Iterable[str],
    source: str,
    model: type[RecordT],
    convert: Callable[[Document], Document] | None = None,
) -> Iterator[Parsed[RecordT] | LineError]:
    """Yield each record validated as ``model``, or an error naming its line and field.

    A JSONL line with no shape to convert is validated straight from its
    text (pydantic's parser, a third faster); a line that fails, or that
    may hold a NUL or a surrogate, is parsed again the slow way so its
    error says what and where.
    """
    for number, text, parsed in _documents(stream):
        if parsed is _UNPARSED and convert is None and not _SUSPECT.search(text):
            try:
                yield Parsed(number, model.model_validate_json(text))
                continue
            except ValidationError:
                pass
        outcome = _record(_parse(text.strip()) if parsed is _UNPARSED else parsed, model, convert)
        if isinstance(outcome, str):
            yield LineError(source, number, outcome, text)
        else:
            yield Parsed(number, outcome)


def _record(
    document: Any, model: type[RecordT], convert: Callable[[Document], Document] | None
) -> RecordT | str:
    """The validated record, or the reason the document is refused."""
    if isinstance(document, json.JSONDecodeError):
        return _json_reason(document)
    if isinstance(document, _BadText):
        return str(document)
    if not isinstance(document, dict):
        return f"expected a JSON object, got {_json_type(document)}"
    if type(document.get("id")) is int:  # an integer id is obviously meant as its digits
        document = {**document, "id": str(document["id"])}
    try:
        return model.model_validate(convert(document) if convert else document)
    except ShapeError as exc:
        return str(exc)
    except KeyError as exc:
        return f"field {exc.args[0]!r}: Field required"
    except ValidationError as exc:
        return describe_validation_error(exc)
    except (TypeError, ValueError, AttributeError) as exc:
        # A converter meeting a value of a type it did not expect: the line is
        # refused with what went wrong rather than ending the whole run.
        return f"cannot read this line's fields: {exc}"


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


class RejectsFile:
    """Writes rejected lines as JSONL (``line``, ``reason``, ``text``), one per line as they
    come; the file is made on the first."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._out: IO[str] | None = None

    def write(self, error: LineError) -> None:
        if self.path is None:
            return
        if self._out is None:
            self._out = self.path.open("w", encoding="utf-8")
        record = {"line": error.line, "reason": error.reason, "text": error.text.rstrip("\n")}
        self._out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
