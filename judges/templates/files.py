"""Template and criteria files: read as safe YAML, validated, content-addressed.

A template lives in a ``templates/*.yaml`` file (the schema, every text
stripped of surrounding whitespace, unknown keys refused)::

    id: pairwise-v2                 # slug, at most 40 characters
    version: "1"                    # yours to bump, at most 10 characters
    description: What it is for.
    system: ...                     # the system prompt
    instructions: ...               # the question asked about each pair
    closing: ...                    # the last line of the user message
    criteria: ...                   # optional: introduces the request's <criteria>
    reference: ...                  # optional: introduces the pair's <reference> answer
    conversation: ...               # optional: said when the prompt has earlier assistant turns
    preference_examples: [...]      # optional few-shots, as in constitutions
    few_shot_tokens: 1500           # optional budget for the few-shots (default 1500)
    constitution_examples: false    # optional: also show a constitution's examples

Its **ref** is what every verdict stores (``template_version``) and what
label keys hold: ``<id>@<version>:<first 12 hex of the content hash>``.
The hash is the SHA-256 of the parsed content as canonical JSON, not of
the file's bytes: any change to a text, an example or the budget gives a
new ref, so labels under different words never mix, while comments, YAML
layout, line endings (LF or CRLF) and a byte-order mark change nothing.
The one exception is ``pairwise-v1``, the template that was code before it
was a file: while its content hash is the pinned one its ref stays
``pairwise-v1``, so its stored verdicts keep their keys.

A criteria file (``criteria.yaml`` in a templates folder) names reusable
criteria: ``criteria: {name: text, ...}``.

Files are data someone else may have written: at most ``MAX_FILE_BYTES``,
nested at most ``MAX_DEPTH`` deep, and without anchors or aliases (which
let a small file stand for a huge text); each of these is an error naming
the file and line, as is any other problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from judges.cai.constitutions import ConstitutionError, PreferenceExample, constitution_from_dict
from judges.errors import JudgeConfigError
from judges.templates.model import (
    CLOSING,
    DEFAULT_FEW_SHOT_TOKENS,
    PairwiseTemplate,
    content_hash,
)

SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
CRITERIA_FILE = "criteria.yaml"
MAX_ID = 40
MAX_VERSION = 10
MAX_FEW_SHOT_TOKENS = 20_000
# The SHA-256 of each template that was code before it was a file: its ref stays its old
# version string while the file is unchanged (tests/test_templates_snapshot.py pins the text).
LEGACY_REFS = {
    "pairwise-v1": "3c5dd5fbd788f2549498e3264d579732e9af358ef2bd14e1849b1b8c821205a7",
}
TEXT_KEYS = ("description", "system", "instructions", "closing")
OPTIONAL_TEXT_KEYS = ("criteria", "reference", "conversation")
KEYS = (
    "id",
    "version",
    *TEXT_KEYS,
    *OPTIONAL_TEXT_KEYS,
    "preference_examples",
    "few_shot_tokens",
    "constitution_examples",
)
MAX_FILE_BYTES = 1_000_000
"""The largest template or criteria file read (a template's texts are a few kilobytes)."""
MAX_DEPTH = 20
"""The deepest nesting of YAML collections a file may have (a template needs 4)."""


class TemplateError(JudgeConfigError):
    """A template or criteria file that cannot be used: ``file: line N: field 'x': problem``."""

    error_class = "invalid_template"

    def __init__(
        self, problem: str, *, file: str | None = None, line: int | None = None, field: str | None
    ) -> None:
        self.problem, self.file, self.line, self.field = problem, file, line, field
        parts = [file or "<template>"]
        if line is not None:
            parts.append(f"line {line}")
        if field:
            parts.append(f"field {field!r}")
        super().__init__(": ".join([*parts, problem]))


class _Loader(yaml.SafeLoader):
    """Safe YAML; a repeated key in one mapping is an error, not a silent overwrite.

    Anchors and aliases are refused (a few hundred bytes of aliases can
    stand for gigabytes of text), and so is nesting deeper than
    ``MAX_DEPTH`` (the composer recurses once per level).
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        if self._depth >= MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels"
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _read(path: Path) -> tuple[object, dict[str, int]]:
    """The parsed YAML and the line of each top-level key; a TemplateError names the line."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror or exc}"
        raise TemplateError(problem, file=str(path), field=None) from None
    if len(raw) > MAX_FILE_BYTES:
        problem = f"the file is larger than {MAX_FILE_BYTES:,} bytes"
        raise TemplateError(problem, file=str(path), field=None)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"the file is not utf-8 text: {exc.reason} at byte {exc.start}"
        raise TemplateError(problem, file=str(path), field=None) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = f"YAML syntax error: {exc.problem or exc.context}"
        raise TemplateError(problem, file=str(path), line=line, field=None) from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"YAML syntax error: {exc}", file=str(path), field=None) from None
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            lines[str(key_node.value)] = key_node.start_mark.line + 1
    return data, lines


class _Where:
    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines

    def error(self, key: str | None, problem: str) -> TemplateError:
        line = self.lines.get(key) if key else None
        return TemplateError(problem, file=self.file, line=line, field=key)


def _text(data: dict[str, Any], key: str, where: _Where, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, "must be a non-empty string")
    return value.strip()


def _identity(data: dict[str, Any], where: _Where) -> tuple[str, str]:
    tid, version = data.get("id"), data.get("version")
    if not isinstance(tid, str) or not SLUG.fullmatch(tid) or len(tid) > MAX_ID:
        raise where.error(
            "id", f"must be a slug (lowercase letters and digits joined by - or _), <= {MAX_ID}"
        )
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not VERSION.fullmatch(version) or len(version) > 10:
        raise where.error("version", f"must be a short version string (<= {MAX_VERSION})")
    return tid, version


def _examples(data: dict[str, Any], where: _Where) -> tuple[PreferenceExample, ...]:
    examples = data.get("preference_examples") or []
    shell = {"id": "t", "version": "1", "description": "t", "principles": [_SHELL_PRINCIPLE]}
    try:
        parsed = constitution_from_dict({**shell, "preference_examples": examples}, source=".")
    except ConstitutionError as exc:
        example = f"{exc.example}: " if exc.example else ""
        inner = f"field {exc.field!r}: " if exc.field else ""
        raise where.error("preference_examples", f"{example}{inner}{exc.problem}") from None
    return parsed.preference_examples


_SHELL_PRINCIPLE = {
    "id": "p",
    "critique_request": "c",
    "revision_request": "r",
    "preference_question": "q",
}


def template_from_dict(data: object, lines: dict[str, int], source: str) -> PairwiseTemplate:
    """Validate one template's parsed YAML; errors name the file, the line and the field."""
    where = _Where(source, lines)
    if not isinstance(data, dict):
        raise where.error(None, "a template file is a mapping (id, version, system, ...)")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise where.error(unknown[0], f"unknown key; known: {', '.join(KEYS)}")
    tid, version = _identity(data, where)
    texts = {k: _text(data, k, where, required=True) for k in TEXT_KEYS if k != "closing"}
    optional = {k: _text(data, k, where, required=False) for k in OPTIONAL_TEXT_KEYS}
    closing = _text(data, "closing", where, required=False) or CLOSING
    budget = data.get("few_shot_tokens", DEFAULT_FEW_SHOT_TOKENS)
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise where.error("few_shot_tokens", "must be a whole number of tokens")
    if not 0 <= budget <= MAX_FEW_SHOT_TOKENS:
        raise where.error("few_shot_tokens", f"must be between 0 and {MAX_FEW_SHOT_TOKENS}")
    constitution_examples = data.get("constitution_examples", False)
    if not isinstance(constitution_examples, bool):
        raise where.error("constitution_examples", "must be true or false")
    template = PairwiseTemplate(
        version="",
        constitution_examples=constitution_examples,
        system=str(texts["system"]),
        instructions=str(texts["instructions"]),
        closing=closing,
        preference_examples=_examples(data, where),
        few_shot_tokens=budget,
        id=tid,
        file_version=version,
        description=str(texts["description"]),
        criteria=optional["criteria"],
        reference=optional["reference"],
        conversation=optional["conversation"],
    )
    digest = content_hash(template.to_dict())
    ref = f"{tid}@{version}:{digest[:12]}"
    if LEGACY_REFS.get(tid) == digest:
        ref = tid
    return replace(template, version=ref, content_hash=digest)


def load_template(path: str | Path) -> PairwiseTemplate:
    """Read and validate one template file (schema in this module's docstring)."""
    path = Path(path)
    data, lines = _read(path)
    return template_from_dict(data, lines, str(path))


def load_criteria(path: str | Path) -> dict[str, str]:
    """A criteria file's named entries: ``criteria: {name: text}``; names are slugs."""
    path = Path(path)
    data, lines = _read(path)
    where = _Where(str(path), lines)
    entries = data.get("criteria") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not isinstance(data, dict) or set(data) != {"criteria"}:
        raise where.error("criteria", "a criteria file is one mapping 'criteria: {name: text}'")
    named: dict[str, str] = {}
    for name, text in entries.items():
        if not isinstance(name, str) or not SLUG.fullmatch(name) or len(name) > MAX_ID:
            raise where.error("criteria", f"entry {name!r}: names are slugs of <= {MAX_ID}")
        if not isinstance(text, str) or not text.strip():
            raise where.error("criteria", f"entry {name!r}: must be a non-empty string")
        named[name] = text.strip()
    return named


@dataclass(frozen=True)
class TemplateScan:
    """What some folders hold: templates by id and by ref, named criteria, and every problem."""

    templates: dict[str, PairwiseTemplate] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    criteria: dict[str, str] = field(default_factory=dict)
    problems: tuple[TemplateError, ...] = ()

    def by_ref(self, ref: str) -> PairwiseTemplate | None:
        for template in self.templates.values():
            if template.ref == ref:
                return template
        return None


def scan_templates(*folders: str | Path) -> TemplateScan:
    """Load every template and criteria file of the folders, collecting errors, not raising.

    An id defined twice (other than by a verbatim copy) is served by
    neither file; the problem names both.
    """
    scan = TemplateScan()
    problems: list[TemplateError] = []
    clashes: set[str] = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            problem = TemplateError("not a folder of templates", file=str(folder), field=None)
            problems.append(problem)
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")):
            try:
                if path.name == CRITERIA_FILE:
                    scan.criteria.update(load_criteria(path))
                    continue
                template = load_template(path)
            except TemplateError as exc:
                problems.append(exc)
                continue
            first = scan.files.get(template.id)
            if first is None:
                scan.templates[template.id], scan.files[template.id] = template, path
            elif scan.templates[template.id].content_hash != template.content_hash:
                message = f"id {template.id!r} is already defined in {first}; rename one"
                problems.append(TemplateError(message, file=str(path), field="id"))
                clashes.add(template.id)
    for tid in clashes:
        del scan.templates[tid], scan.files[tid]
    return replace(scan, problems=tuple(problems))


def default_templates_dir() -> Path:
    """The repository's ``templates/`` folder, beside the ``judges`` package.

    A non-editable install has no repository beside it: copy the folder and
    point the service at it (``REFEREE_TEMPLATES_DIR``), as the Dockerfile does.
    """
    return Path(__file__).resolve().parents[2] / "templates"
