"""Strict validation of constitution data, with errors that say exactly where.

Private to :mod:`judges.cai.constitutions`, which documents the schema and
re-exports :class:`ConstitutionError`. Everything here turns parsed
YAML/JSON into plain checked values; the dataclasses are built there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from judges.errors import JudgeConfigError
from judges.types import Message, Text

SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
ROLES = ("system", "user", "assistant")

TOP_KEYS = ("id", "version", "description", "principles")
TOP_OPTIONAL = ("critique_examples", "preference_examples")
PRINCIPLE_KEYS = ("id", "critique_request", "revision_request", "preference_question")
PRINCIPLE_OPTIONAL = ("weight", "tags")
CRITIQUE_KEYS = ("prompt", "response", "critique", "needs_revision")
PREFERENCE_KEYS = ("prompt", "response_a", "response_b", "choice")


class ConstitutionError(JudgeConfigError):
    """A constitution that cannot be used, with where the fault is.

    ``file`` is the path as given, ``principle`` the principle's id (or its
    1-based position when the id itself is missing or bad), ``example``
    names a few-shot example ("critique example #2"), ``field`` the key at
    fault, ``line``/``column`` the place of a YAML syntax error, and
    ``problem`` the bare reason. The message reads like
    ``constitutions/x.yaml: principle 'privacy' (#3): field 'revision_request': must be a
    non-empty string``.
    """

    error_class = "invalid_constitution"

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        principle: str | int | None = None,
        principle_index: int | None = None,
        example: str | None = None,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.principle = principle
        self.principle_index = principle_index
        self.example = example
        self.field = field
        self.line = line
        self.column = column
        super().__init__(self.format())

    def format(self, file_label: str | None = None) -> str:
        """The message, with ``file_label`` in place of the file path when given."""
        parts = [file_label or self.file or "<constitution>"]
        if self.line is not None:
            parts.append(f"line {self.line}" + (f", column {self.column}" if self.column else ""))
        if isinstance(self.principle, str):
            suffix = f" (#{self.principle_index})" if self.principle_index else ""
            parts.append(f"principle {self.principle!r}{suffix}")
        elif self.principle is not None:
            parts.append(f"principle #{self.principle}")
        if self.example:
            parts.append(self.example)
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join([*parts, self.problem])


@dataclass(frozen=True)
class _Where:
    """Where in the file a value sits, for error messages."""

    file: str | None
    principle: str | int | None = None
    index: int | None = None
    example: str | None = None

    def error(self, problem: str, field: str | None = None) -> ConstitutionError:
        return ConstitutionError(
            problem,
            file=self.file,
            principle=self.principle,
            principle_index=self.index,
            example=self.example,
            field=field,
        )


def _mapping(value: object, where: _Where, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(f"{what} must be a mapping of keys to values, not {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _check_keys(
    data: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...], where: _Where
) -> None:
    allowed = required + optional
    for key in data:
        if key not in allowed:
            raise where.error(f"unknown key; allowed keys are {', '.join(allowed)}", str(key))
    for key in required:
        if key not in data:
            raise where.error("missing", key)


def _text(data: dict[str, Any], key: str, where: _Where) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"must be a non-empty string, not {_describe(value)}", key)
    return value.strip()


def _describe(value: object) -> str:
    if isinstance(value, str):
        return "blank text" if value else "empty text"
    return _kind(value)


def _slug(data: dict[str, Any], key: str, where: _Where) -> str:
    value = _text(data, key, where)
    if len(value) > 64 or not SLUG.fullmatch(value):
        raise where.error(
            f"{value!r} is not a slug: use lowercase letters and digits joined by - or _ "
            "(at most 64 characters)",
            key,
        )
    return value


def _version(data: dict[str, Any], where: _Where) -> str:
    value = data.get("version")
    # YAML reads `version: 1` as an int; accept it, but not 1.10 (read as 1.1) or a date.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not VERSION.fullmatch(value.strip()):
        raise where.error(
            f"must be a string of letters, digits, '.', '_', '+' or '-' such as \"1\" or "
            f'"2.1" (quote it), not {_describe(value)}',
            "version",
        )
    return value.strip()


def _weight(data: dict[str, Any], where: _Where) -> float:
    value = data.get("weight", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"must be a number above 0, not {_kind(value)}", "weight")
    if not math.isfinite(value) or value <= 0:
        raise where.error(f"must be a finite number above 0, not {value}", "weight")
    return float(value)


def _tags(data: dict[str, Any], where: _Where) -> tuple[str, ...]:
    value = data.get("tags", [])
    if not isinstance(value, list):
        raise where.error(f"must be a list of strings, not {_kind(value)}", "tags")
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not tag.strip():
            raise where.error(f"every tag must be a non-empty string, not {_describe(tag)}", "tags")
        if tag.strip() in tags:
            raise where.error(f"tag {tag.strip()!r} appears twice", "tags")
        tags.append(tag.strip())
    return tuple(tags)


def _list(data: dict[str, Any], key: str, where: _Where, *, required: bool) -> list[Any]:
    value = data.get(key, None if required else [])
    if not isinstance(value, list) or (required and not value):
        need = "a non-empty list" if required else "a list"
        raise where.error(f"must be {need}, not {_describe(value)}", key)
    return value


def _principle(item: object, index: int, where: _Where) -> dict[str, Any]:
    at = _Where(where.file, principle=index)
    data = _mapping(item, at, "a principle")
    pid = data.get("id")
    if isinstance(pid, str) and pid.strip():
        at = _Where(where.file, principle=pid.strip(), index=index)
    _check_keys(data, PRINCIPLE_KEYS, PRINCIPLE_OPTIONAL, at)
    return {
        "id": _slug(data, "id", at),
        "critique_request": _text(data, "critique_request", at),
        "revision_request": _text(data, "revision_request", at),
        "preference_question": _text(data, "preference_question", at),
        "weight": _weight(data, at),
        "tags": _tags(data, at),
    }


def _principles(data: dict[str, Any], where: _Where) -> list[dict[str, Any]]:
    principles: list[dict[str, Any]] = []
    first_at: dict[str, int] = {}
    for index, item in enumerate(_list(data, "principles", where, required=True), start=1):
        principle = _principle(item, index, where)
        pid = principle["id"]
        if pid in first_at:
            at = _Where(where.file, principle=pid, index=index)
            raise at.error(f"duplicate principle id (first used by #{first_at[pid]})", "id")
        first_at[pid] = index
        principles.append(principle)
    return principles


def parse_prompt(value: object, where: _Where, key: str = "prompt") -> Text:
    """A prompt: a non-empty string, or a non-empty list of {role, content} messages."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if not isinstance(value, list) or not value:
        raise where.error(
            f"must be a non-empty string or a list of messages, not {_describe(value)}", key
        )
    messages: list[Message] = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, dict) or set(item) != {"role", "content"}:
            raise where.error(f"message #{number} must have exactly a role and a content", key)
        role, content = item["role"], item["content"]
        if role not in ROLES:
            raise where.error(f"message #{number}: role must be one of {', '.join(ROLES)}", key)
        if not isinstance(content, str) or not content.strip():
            raise where.error(f"message #{number}: content must be a non-empty string", key)
        messages.append(Message(role=role, content=content.strip()))
    return tuple(messages)


def _optional_text(data: dict[str, Any], key: str, where: _Where) -> str | None:
    return None if data.get(key) is None else _text(data, key, where)


def _critique_example(item: object, index: int, where: _Where) -> dict[str, Any]:
    at = _Where(where.file, example=f"critique example #{index}")
    data = _mapping(item, at, "a critique example")
    _check_keys(data, CRITIQUE_KEYS, ("revision",), at)
    needs_revision = data["needs_revision"]
    if not isinstance(needs_revision, bool):
        raise at.error(f"must be true or false, not {_kind(needs_revision)}", "needs_revision")
    if needs_revision and data.get("revision") is None:
        raise at.error("required when needs_revision is true", "revision")
    if not needs_revision and data.get("revision") is not None:
        raise at.error("must be left out when needs_revision is false", "revision")
    return {
        "prompt": parse_prompt(data["prompt"], at),
        "response": _text(data, "response", at),
        "critique": _text(data, "critique", at),
        "needs_revision": needs_revision,
        "revision": _optional_text(data, "revision", at),
    }


def _preference_example(item: object, index: int, where: _Where) -> dict[str, Any]:
    at = _Where(where.file, example=f"preference example #{index}")
    data = _mapping(item, at, "a preference example")
    _check_keys(data, PREFERENCE_KEYS, ("explanation",), at)
    if data["choice"] not in ("a", "b"):
        raise at.error(f"must be 'a' or 'b', not {data['choice']!r}", "choice")
    return {
        "prompt": parse_prompt(data["prompt"], at),
        "response_a": _text(data, "response_a", at),
        "response_b": _text(data, "response_b", at),
        "choice": data["choice"],
        "explanation": _optional_text(data, "explanation", at),
    }


def parse_constitution(data: object, file: str | None) -> dict[str, Any]:
    """Checked plain values for every field of a constitution, or a :class:`ConstitutionError`."""
    where = _Where(file)
    if data is None:
        raise where.error("the file is empty")
    top = _mapping(data, where, "a constitution")
    _check_keys(top, TOP_KEYS, TOP_OPTIONAL, where)
    critiques = _list(top, "critique_examples", where, required=False)
    preferences = _list(top, "preference_examples", where, required=False)
    return {
        "id": _slug(top, "id", where),
        "version": _version(top, where),
        "description": _text(top, "description", where),
        "principles": _principles(top, where),
        "critique_examples": [
            _critique_example(item, n, where) for n, item in enumerate(critiques, start=1)
        ],
        "preference_examples": [
            _preference_example(item, n, where) for n, item in enumerate(preferences, start=1)
        ],
    }
