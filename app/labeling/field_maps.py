"""Field maps (``--map``): read a data set of any shape as canonical pairs, without a converter.

A map names, for each canonical field, where its value is in a line, and may
translate the values it finds::

    prompt=question,response_a=answer_0,response_b=answer_1,label=winner:0=a,1=b,2=tie

- **Targets**: ``id``, ``prompt``, ``response_a``, ``response_b``, ``label``,
  ``label_votes``, ``metadata``, or ``chosen`` and ``rejected`` (the preferred
  and the dispreferred answer). A map onto ``chosen``/``rejected`` turns the
  line into a TRL row (or, without a ``prompt``, an hh-rlhf transcript pair)
  and goes through that shape's converter, so the preferred answer lands on
  ``a`` or ``b`` by a hash of the pair exactly as for the built-in shapes.
- **Paths**: dot-separated; a number indexes a list (``-1`` is the last item),
  ``start:stop`` slices one (``conversation.:-1`` is every message but the
  last): ``conversation.0.content``, ``answers.1``, ``labels.0``. A key that
  holds a dot itself is found as written first.
- **Values**: ``TARGET=PATH:VALUE=NEW,VALUE=NEW,…``. A value compares as text
  with surrounding spaces ignored (``1`` matches ``1`` and ``"1"``; ``(B)``
  matches ``" (B)"``). An empty NEW (``2=``) means "no label" for that line.
  A value the map does not list rejects the line, naming the field and value.
- Canonical fields the map does not name are read from fields of the same
  name; every other field is kept in ``metadata``.
- ``--map FILE.yaml`` reads the same from YAML, for long maps::

      prompt: question
      response_a: answers.0
      label:
        from: labels.0
        values: {"(A)": a, "(B)": b}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.errors import InvalidInputError
from app.labeling.shapes import Document, ShapeError

TARGETS = (
    "id",
    "prompt",
    "response_a",
    "response_b",
    "chosen",
    "rejected",
    "label",
    "label_votes",
    "metadata",
)
LABEL_TARGETS = frozenset({"label", "label_votes"})
GOLD_VALUES = frozenset({"a", "b", "tie"})
_PREFERENCE_FIELDS = ("response_a", "response_b", "label", "label_votes")
_INDEX = re.compile(r"-?\d+")
_SLICE = re.compile(r"(-?\d*):(-?\d*)")
_MISSING = object()


def value_key(value: Any) -> str | None:
    """The text a source value is matched by; None for a list or an object (map an element)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return None


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One target: where its value is, and how values translate (None: taken as found)."""

    target: str
    path: str
    values: dict[str, str | None] | None = None

    @property
    def top(self) -> str:
        """The line's top-level field the path starts in (kept out of metadata)."""
        return self.path.split(".", 1)[0]

    def read(self, document: Document) -> Any:
        value = find(document, self.path)
        if self.values is None:
            return value
        if self.target == "label_votes" and isinstance(value, list):
            return [self.translate(item) for item in value]
        return self.translate(value)

    def translate(self, value: Any) -> str | None:
        assert self.values is not None
        key = value_key(value)
        if key is None:
            raise ShapeError(
                f"field {self.path!r}: value {_show(value)} is a {type(value).__name__}; "
                f"map one element of it (e.g. {self.path}.0)"
            )
        if key not in self.values:
            known = ", ".join(repr(k) for k in self.values)
            raise ShapeError(
                f"field {self.path!r}: value {_show(value)} is not in the --map values "
                f"for {self.target} ({known})"
            )
        return self.values[key]


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def find(document: Document, path: str) -> Any:
    """The value at ``path`` in a line; a ShapeError naming the path when it is not there."""
    if path in document:
        return document[path]
    value: Any = document
    for depth, segment in enumerate(path.split(".")):
        where = ".".join(path.split(".")[: depth + 1])
        value = _step(value, segment, path, where)
    return value


def _step(value: Any, segment: str, path: str, where: str) -> Any:
    if isinstance(value, dict):
        if segment not in value:
            raise ShapeError(f"field {path!r}: {where!r} not found")
        return value[segment]
    if isinstance(value, list):
        if _INDEX.fullmatch(segment):
            index = int(segment)
            if not -len(value) <= index < len(value):
                raise ShapeError(
                    f"field {path!r}: {where!r} is out of range (the list has {len(value)} items)"
                )
            return value[index]
        if match := _SLICE.fullmatch(segment):
            start, stop = (int(part) if part else None for part in match.groups())
            return value[start:stop]
        raise ShapeError(f"field {path!r}: {segment!r} is not an index into a list")
    raise ShapeError(f"field {path!r}: {where!r} not found ({type(value).__name__} has no fields)")


@dataclass(frozen=True, slots=True)
class FieldMap:
    """The rules of one ``--map``, applied to a line before its shape's converter."""

    rules: tuple[FieldRule, ...]

    @property
    def targets(self) -> set[str]:
        return {rule.target for rule in self.rules}

    def apply(self, document: Document) -> Document:
        """The line with the map's targets filled in; other fields carried over as they are.

        Fields a preferred/dispreferred map leaves over under canonical names
        (``response_a``, ``label``, …) would make the line look canonical
        and skip the position randomisation, so they are kept as metadata.
        """
        mapped = {rule.target: rule.read(document) for rule in self.rules}
        if type(mapped.get("id")) is int:  # as for an unmapped id: an integer means its digits
            mapped["id"] = str(mapped["id"])
        consumed = {rule.top for rule in self.rules} | mapped.keys()
        rest = {k: v for k, v in document.items() if k not in consumed}
        if "chosen" in mapped:
            moved = {k: rest.pop(k) for k in _PREFERENCE_FIELDS if k in rest}
            if moved:
                metadata = rest.get("metadata") or {}
                if not isinstance(metadata, dict):
                    raise ShapeError("field 'metadata': must be an object")
                rest["metadata"] = {**metadata, **moved}
        return {**rest, **mapped}


def check_rules(rules: list[FieldRule], where: str) -> FieldMap:
    """Refuse maps that cannot mean anything: repeated targets, chosen without rejected, …"""
    targets = [rule.target for rule in rules]
    for target in set(targets):
        if targets.count(target) > 1:
            raise InvalidInputError(f"{where}: {target} is mapped twice")
    named = set(targets)
    if ("chosen" in named) != ("rejected" in named):
        raise InvalidInputError(f"{where}: map both chosen and rejected, or neither")
    if "chosen" in named and named & set(_PREFERENCE_FIELDS):
        raise InvalidInputError(
            f"{where}: chosen/rejected carry the preference themselves; "
            "don't also map response_a, response_b, label or label_votes"
        )
    if not rules:
        raise InvalidInputError(f"{where}: the map is empty")
    return FieldMap(tuple(rules))


def _rule(target: str, path: str, values: dict[str, str | None] | None, where: str) -> FieldRule:
    if target not in TARGETS:
        raise InvalidInputError(f"{where}: unknown field {target!r}; one of {', '.join(TARGETS)}")
    if not path or any(not part for part in path.split(".")):
        raise InvalidInputError(f"{where}: {target} needs a source path like answers.0")
    if values is not None and target in LABEL_TARGETS:
        for source, new in values.items():
            if new is not None and new not in GOLD_VALUES:
                raise InvalidInputError(
                    f"{where}: {target} value {source!r} maps to {new!r}; labels are a, b or tie "
                    "(or nothing, for no label)"
                )
    return FieldRule(target, path, values)


def parse_inline(spec: str) -> FieldMap:
    """``prompt=q,label=winner:0=a,1=b`` → a FieldMap (items after a value map extend it)."""
    rules: list[FieldRule] = []
    target, path, values = "", "", None
    for item in filter(None, (part.strip() for part in spec.split(","))):
        left, sep, right = item.partition("=")
        if sep and left.strip() in TARGETS:
            if target:
                rules.append(_rule(target, path, values, f"--map {target}"))
            target, (path, values) = left.strip(), _split_values(right.strip(), item)
        elif sep and values is not None:
            values[left.strip()] = right.strip() or None
        else:
            raise InvalidInputError(
                f"--map entry {item!r} must be FIELD=PATH or FIELD=PATH:VALUE=NEW,…, "
                f"FIELD one of {', '.join(TARGETS)}"
            )
    if target:
        rules.append(_rule(target, path, values, f"--map {target}"))
    return check_rules(rules, "--map")


def _split_values(right: str, item: str) -> tuple[str, dict[str, str | None] | None]:
    # The value map starts at the first ':' followed by VALUE=NEW; a ':' without '=' after it
    # is a slice in the path (conversation.:-1).
    for match in re.finditer(":", right):
        rest = right[match.end() :]
        if "=" in rest:
            source, _, new = rest.partition("=")
            return right[: match.start()], {source.strip(): new.strip() or None}
    if item.rstrip().endswith(":"):
        raise InvalidInputError(f"--map entry {item!r}: a ':' must be followed by VALUE=NEW pairs")
    return right, None


def load_yaml(path: Path) -> FieldMap:
    """A FieldMap from a YAML file; errors name the file and the key."""
    where = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read map file {where}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError(f"{where}: not valid YAML{at}") from exc
    if not isinstance(document, dict):
        raise InvalidInputError(f"{where}: expected a mapping of FIELD: PATH")
    rules = [_yaml_rule(str(target), entry, where) for target, entry in document.items()]
    return check_rules(rules, where)


def _yaml_rule(target: str, entry: Any, where: str) -> FieldRule:
    place = f"{where}: key {target!r}"
    if isinstance(entry, str):
        return _rule(target, entry, None, place)
    if not isinstance(entry, dict):
        raise InvalidInputError(f"{place}: expected a path or {{from: PATH, values: {{…}}}}")
    unknown = set(entry) - {"from", "values"}
    if unknown:
        raise InvalidInputError(f"{place}: unknown key(s) {', '.join(map(str, sorted(unknown)))}")
    path, values = entry.get("from"), entry.get("values")
    if not isinstance(path, str):
        raise InvalidInputError(f"{place}: 'from' must be the source path")
    if values is None:
        return _rule(target, path, None, place)
    if not isinstance(values, dict) or not values:
        raise InvalidInputError(f"{place}: 'values' must map source values to new ones")
    translated: dict[str, str | None] = {}
    for source, new in values.items():
        key = value_key(source)
        if key is None or not (new is None or isinstance(new, str | int)):
            raise InvalidInputError(f"{place}: value {source!r}: {new!r} is not a plain value")
        translated[key] = None if new is None or new == "" else str(new)
    return _rule(target, path, translated, place)


def load_map(spec: str) -> FieldMap:
    """``--map``: a YAML file (``*.yaml``/``*.yml``) or an inline map."""
    if spec.strip().lower().endswith((".yaml", ".yml")):
        return load_yaml(Path(spec.strip()))
    return parse_inline(spec)
