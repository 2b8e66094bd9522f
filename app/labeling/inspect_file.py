"""``referee inspect FILE``: what shape a file has, which fields would be read, and a ``--map``.

It reads the first lines of a file (no database, no judge), names the
built-in shape they fit and the fields that shape uses, with sample values,
and converts the sample as ``referee label`` would. For a file no shape
fits it suggests a ``--map`` from the field names and values (prompt-like
names, preferred/dispreferred names, paired answer fields, answer lists,
conversations, label-like fields with few distinct values) and tries it on
the same lines. Suggestions are guesses: the output lists each label
field's values so they can be checked against the data set's card.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pydantic import BaseModel

from app.errors import InvalidInputError
from app.labeling.field_maps import FieldMap, parse_inline, value_key
from app.labeling.jsonl import LineError, ParsedLine, read_pairs, read_records
from app.labeling.shapes import Document, converter, detect_shape

SAMPLE_LINES = 200
MAX_LABEL_VALUES = 6
SHAPE_FIELDS: dict[str, dict[str, str]] = {
    "canonical": {
        "id": "id",
        "prompt": "prompt",
        "response_a": "response_a",
        "response_b": "response_b",
        "label": "label",
    },
    "trl": {"id": "id", "prompt": "prompt", "chosen": "chosen", "rejected": "rejected"},
    "hh-rlhf": {"chosen": "chosen (transcript)", "rejected": "rejected (transcript)"},
    "pandalm": {
        "id": "idx",
        "prompt": "instruction + input",
        "response_a": "response1",
        "response_b": "response2",
        "label": "annotator1..3 (majority; 0 tie, 1 a, 2 b)",
    },
    "llmbar": {
        "prompt": "input",
        "response_a": "output_1",
        "response_b": "output_2",
        "label": "label (1 a, 2 b)",
    },
}
PROMPT_NAMES = ("prompt", "question", "instruction", "input", "query", "context", "post", "text")
CHOSEN_NAMES = ("chosen", "preferred", "better", "winner", "good", "positive", "accepted")
REJECTED_NAMES = ("rejected", "dispreferred", "worse", "loser", "bad", "negative")
LABEL_NAMES = ("label", "labels", "winner", "preference", "pref", "choice", "gold", "annotation")
ID_NAMES = ("uid", "idx", "question_id", "pair_id", "sample_id", "_id")
_SUFFIX = re.compile(r"^(.*?)[_\-]?([a-zA-Z]|\d)$")


class _Raw(BaseModel):
    """A line as parsed JSON, read through the same reader as every command."""

    document: dict[str, Any]


@dataclass
class FieldInfo:
    """One top-level field across the sampled lines."""

    name: str
    kind: str
    """text, texts (a list of strings), conversation, number, flag, object or mixed."""
    present: int = 0
    samples: list[str] = field(default_factory=list)
    values: Counter[str] = field(default_factory=Counter)
    """Distinct short values (a one-item list counts as its item), while there are few."""
    many: bool = False
    """Too many distinct values, or values too long, to be a label."""
    in_list: bool = False
    """The values above sit inside one-item lists (``[" (B)"]``)."""

    @property
    def label_like(self) -> bool:
        """Few distinct short values that repeat (or a label's name): a|b|tie in some code."""
        if self.many or not self.values or self.kind not in ("text", "number", "texts"):
            return False
        return self.name.lower() in LABEL_NAMES or len(self.values) * 2 <= self.present


@dataclass
class Inspection:
    source: str
    lines: list[tuple[int, Document]] = field(default_factory=list)
    unreadable: list[LineError] = field(default_factory=list)
    shapes: Counter[str] = field(default_factory=Counter)
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    suggestion: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> str | None:
        """The built-in shape most sampled lines fit, if any does."""
        placed = [(count, name) for name, count in self.shapes.items() if name != "none"]
        return max(placed)[1] if placed else None


def inspect_stream(stream: Any, source: str) -> Inspection:
    """Read the first lines of a file and describe them; suggest a map when no shape fits.

    ``stream`` is what ``open_input`` returns, handed to the shared reader as it is.
    """
    result = Inspection(source)
    records = read_records(stream, source, _Raw, lambda document: {"document": document})
    for record in islice(records, SAMPLE_LINES):
        if isinstance(record, LineError):
            result.unreadable.append(record)
            continue
        document = record.record.document
        result.lines.append((record.line, document))
        result.shapes[detect_shape(document) or "none"] += 1
        for name, value in document.items():
            _profile(result.fields, name, value)
    if result.shape is None and result.lines:
        result.suggestion = suggest(result.fields, result.notes)
    return result


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "texts"
    if isinstance(value, list) and value and all(_is_message(v) for v in value):
        return "conversation"
    return "object" if isinstance(value, dict) else "mixed"


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value and "content" in value


def _profile(fields: dict[str, FieldInfo], name: str, value: Any) -> None:
    kind = _kind(value)
    info = fields.setdefault(name, FieldInfo(name, kind))
    if info.kind != kind:
        info.kind = "mixed"
    info.present += 1
    shown = _short(value)
    if len(info.samples) < 2 and shown not in info.samples:
        info.samples.append(shown)
    item = value[0] if kind == "texts" and len(value) == 1 else value
    key = value_key(item)
    if key is None or len(key) > 40:
        info.many = True
    elif not info.many:
        info.values[key] += 1
        info.in_list = info.in_list or item is not value
        info.many = len(info.values) > MAX_LABEL_VALUES


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def _named(
    fields: dict[str, FieldInfo], names: Iterable[str], kinds: tuple[str, ...], label: bool = False
) -> str | None:
    """The first field called one of ``names`` (or ``…_name``); a label only if ``label``."""
    for wanted in names:
        for name, info in fields.items():
            lower = name.lower()
            named = lower == wanted or lower.endswith(f"_{wanted}")
            if named and info.kind in kinds and info.label_like == label:
                return name
    return None


def suggest(fields: dict[str, FieldInfo], notes: list[str]) -> str:
    """A ``--map`` for fields no built-in shape fits (``?`` where nothing could be guessed)."""
    parts: dict[str, str] = {}
    suffixes: tuple[str, str] | None = None
    conversations = [n for n, f in fields.items() if f.kind == "conversation"]
    chosen = _named(fields, CHOSEN_NAMES, ("text", "conversation"))
    rejected = _named(fields, REJECTED_NAMES, ("text", "conversation"))
    if len(conversations) >= 2:
        first, second = sorted(conversations)[:2]
        parts |= {"prompt": f"{first}.:-1", "response_a": f"{first}.-1"}
        parts["response_b"] = f"{second}.-1"
        suffixes = _pair_suffixes(first, second)
    elif chosen and rejected:
        parts |= {"chosen": chosen, "rejected": rejected}
    elif pair := _answer_pair(fields):
        parts |= {"response_a": pair[0], "response_b": pair[1]}
        suffixes = _pair_suffixes(*pair)
    elif answers := next(
        (n for n, f in fields.items() if f.kind == "texts" and not f.label_like), None
    ):
        parts |= {"response_a": f"{answers}.0", "response_b": f"{answers}.1"}
        suffixes = ("0", "1")
    used = {part.split(".", 1)[0] for part in parts.values()}
    if "prompt" not in parts:
        prompt = _named(
            {n: f for n, f in fields.items() if n not in used},
            PROMPT_NAMES,
            ("text", "conversation"),
        )
        parts["prompt"] = prompt or "?"
        used.add(prompt or "")
    if "chosen" not in parts:
        label = _label_field(fields, used)
        if label is not None:
            parts["label"] = _label_rule(fields[label], suffixes, notes)
        else:
            notes.append("no label-like field found: the pairs would carry no human label")
    if "id" not in fields and (found := next((n for n in ID_NAMES if n in fields), None)):
        parts["id"] = found
    if any(value == "?" or "=?" in value for value in parts.values()):
        notes.append("replace each ? before use (a label value: a, b, tie, or empty for none)")
    order = ("id", "prompt", "response_a", "response_b", "chosen", "rejected", "label")
    return ",".join(f"{target}={parts[target]}" for target in order if target in parts)


def _pair_suffixes(first: str, second: str) -> tuple[str, str] | None:
    one, two = _SUFFIX.match(first), _SUFFIX.match(second)
    if one and two and one.group(1) == two.group(1):
        return one.group(2).lower(), two.group(2).lower()
    return None


def _answer_pair(fields: dict[str, FieldInfo]) -> tuple[str, str] | None:
    """Two text fields whose names differ in a last letter or digit: answer_0/answer_1, …"""
    stems: dict[str, list[str]] = {}
    for name, info in fields.items():
        if info.kind == "text" and not info.label_like and (match := _SUFFIX.match(name)):
            stems.setdefault(match.group(1), []).append(name)
    pairs = [sorted(names) for names in stems.values() if len(names) == 2]
    return (pairs[0][0], pairs[0][1]) if pairs else None


def _label_field(fields: dict[str, FieldInfo], used: set[str]) -> str | None:
    candidates = {n: f for n, f in fields.items() if n not in used and f.label_like}
    named = _named(candidates, LABEL_NAMES, ("text", "number", "texts"), label=True)
    if named is not None:
        return named
    guessable = (n for n, f in candidates.items() if all(_guess(v, None) for v in f.values))
    return next(guessable, next(iter(candidates), None))


def _label_rule(info: FieldInfo, suffixes: tuple[str, str] | None, notes: list[str]) -> str:
    values = sorted(info.values)
    notes.append(
        f"field {info.name!r} looks like the label; its values: "
        + ", ".join(f"{json.dumps(v, ensure_ascii=False)} ({info.values[v]})" for v in values)
    )
    guesses = {value: _guess(value, suffixes) for value in values}
    numeric = [v for v in values if v.isdigit()]
    if numeric and len(numeric) == len(values) and suffixes is None:
        ordered = dict(zip(numeric, ("a", "b", "tie"), strict=False))
        guesses = {v: guesses[v] or ordered.get(v) for v in values}
    if None not in guesses.values() and len(set(guesses.values())) < len(guesses) - 1:
        notes.append(f"check the guesses for {info.name!r}: several values map to one label")
    path = f"{info.name}.0" if info.in_list else info.name
    return f"{path}:" + ",".join(f"{v}={guesses[v] or '?'}" for v in values)


def _guess(value: str, suffixes: tuple[str, str] | None) -> str | None:
    """a, b or tie for a label value, from its text and the answer fields' name endings."""
    word = re.sub(r"[^a-z0-9]", "", value.lower())
    if suffixes is not None and word in suffixes:
        return "a" if word == suffixes[0] else "b"
    if any(hint in word for hint in ("tie", "draw", "equal", "both", "neither", "same")):
        return "tie"
    for side in ("a", "b"):
        if word == side or re.fullmatch(
            rf"(model|response|answer|output|completion)_?{side}", word
        ):
            return side
    if suffixes is not None and value.isdigit():
        return "tie"  # the one number that names neither answer field
    return None


@dataclass
class Trial:
    """The sampled lines converted as ``referee label`` would: pairs, labels and rejects."""

    pairs: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    rejected: list[LineError] = field(default_factory=list)


def try_convert(result: Inspection, convert: Callable[[Document], Document]) -> Trial:
    trial = Trial()
    for line, document in result.lines:
        text = io.StringIO(json.dumps(document, ensure_ascii=False) + "\n")
        (record,) = read_pairs(text, result.source, convert)
        if isinstance(record, ParsedLine):
            trial.pairs += 1
            trial.labels[record.pair.label or "none"] += 1
        else:
            trial.rejected.append(LineError(result.source, line, record.reason, record.text))
    return trial


def report(result: Inspection, mapping: FieldMap | None = None, fmt: str = "auto") -> list[str]:
    """The lines ``referee inspect`` prints."""
    out = [f"{result.source}: {len(result.lines)} lines sampled"]
    out += [f"  unreadable: {error}" for error in result.unreadable[:5]]
    placed = result.shape
    if mapping is not None:
        out.append(f"shape: --map ({', '.join(sorted(mapping.targets))}), then {fmt}")
    elif placed is not None:
        shapes = ", ".join(f"{name} {count}" for name, count in result.shapes.most_common())
        out.append(f"shape: {placed} (sampled lines: {shapes})")
        out.append("fields it would use:")
        for target, source in SHAPE_FIELDS[placed].items():
            info = result.fields.get(source.split(" ")[0])
            if info is not None or target not in ("id", "label"):
                sample = f"  e.g. {', '.join(info.samples)}" if info else ""
                out.append(f"  {target:<10} <- {source}{sample}")
    else:
        out.append("shape: none of the built-in ones (canonical, trl, hh-rlhf, pandalm, llmbar)")
    if placed is not None and mapping is None:
        named = " ".join(SHAPE_FIELDS[placed].values())
        used = set(re.findall(r"[a-z_0-9]+", named)) | {"metadata"}
        others = [name for name in result.fields if name not in used]
        if others:
            out.append(f"other fields, kept in metadata: {', '.join(others)}")
    else:
        out += _fields(result)
    if mapping is None and placed is None and result.suggestion is not None:
        out.append(f"suggested: --map '{result.suggestion}'")
        out += [f"  note: {note}" for note in result.notes]
        if "?" not in result.suggestion:
            try:
                mapping = parse_inline(result.suggestion)
            except InvalidInputError as exc:
                out.append(f"  (the suggestion does not parse: {exc.message})")
    if mapping is not None or placed is not None:
        trial = try_convert(result, converter(fmt, mapping))
        labels = ", ".join(f"{k} {v}" for k, v in sorted(trial.labels.items()))
        out.append(f"read as pairs: {trial.pairs} of {len(result.lines)} (labels: {labels or '-'})")
        out += [f"  rejected: {error}" for error in trial.rejected[:5]]
    return out


def _fields(result: Inspection) -> list[str]:
    out = ["fields:"]
    for info in result.fields.values():
        values = ""
        if info.label_like:
            values = "  values: " + ", ".join(
                f"{json.dumps(v, ensure_ascii=False)} ({n})" for v, n in sorted(info.values.items())
            )
        out.append(
            f"  {info.name} ({info.kind}, {info.present} lines)  e.g. {info.samples[0]}{values}"
        )
    return out
