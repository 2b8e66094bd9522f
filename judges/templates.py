"""Pairwise judging templates as data: YAML files, validated, content-addressed and rendered.

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

Its **ref** is what every verdict stores (``template_version``) and what
label keys hold: ``<id>@<version>:<first 12 hex of the content hash>``, so
any edit, even under the same version, gives new labels rather than
reusing old ones. The one exception is ``pairwise-v1``, the template that
was code before it was a file: while its content hash is the pinned one
its ref stays ``pairwise-v1``, so its stored verdicts keep their keys.

A criteria file (``criteria.yaml`` in a templates folder) names reusable
criteria: ``criteria: {name: text, ...}``.

The user message is laid out in code, the words come from the file:
instructions (or a constitution's question), the criteria, the
conversation note, the fenced prompt, the reference, both fenced
responses, the closing line. Every fenced text is defused against every
fence tag the message uses (:mod:`judges.fencing`); a message without
criteria or reference is defused against the original four tags only, so
it is byte for byte what it was.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from judges.cai.constitutions import ConstitutionError, PreferenceExample, constitution_from_dict
from judges.errors import JudgeConfigError
from judges.fencing import defuse_tags
from judges.prompts import FENCE_TAGS, render_text
from judges.types import ShownPair, Text, WorkedExample

__all__ = [
    "DEFAULT_TEMPLATE",
    "TEMPLATES",
    "PairwiseTemplate",
    "TemplateError",
    "TemplateScan",
    "default_templates_dir",
    "estimate_tokens",
    "get_template",
    "load_template",
    "prior_turns",
    "scan_templates",
    "template_ref",
    "use_template_folders",
]

SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
DEFAULT_TEMPLATE = "pairwise-v1"
CLOSING = "Record your verdict with the verdict tool or JSON format you were given."
CRITERIA_FILE = "criteria.yaml"
MAX_ID = 40
MAX_VERSION = 10
DEFAULT_FEW_SHOT_TOKENS = 1500
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


def estimate_tokens(text: str) -> int:
    """Tokens of a text as estimated everywhere here: a quarter of its characters, rounded up.

    Real tokenizers give 3.5-4.5 characters per token on English; the
    estimate bounds a budget, not a bill.
    """
    return -(-len(text) // 4)


@dataclass(frozen=True)
class PairwiseTemplate:
    """A pairwise judging prompt: the words of each part, and the ref verdicts store.

    ``version`` is the ref (the name ``template_version`` columns and label
    keys hold); ``file_version`` is the file's own ``version``.
    """

    version: str
    system: str
    instructions: str
    closing: str = CLOSING
    criteria: str | None = None
    reference: str | None = None
    conversation: str | None = None
    preference_examples: tuple[PreferenceExample, ...] = ()
    few_shot_tokens: int = DEFAULT_FEW_SHOT_TOKENS
    constitution_examples: bool = False
    """Also show the ``preference_examples`` of the constitution a pair is judged under."""
    id: str = ""
    file_version: str = ""
    description: str = ""
    content_hash: str = ""

    @property
    def ref(self) -> str:
        return self.version

    def missing(self, *, criteria: bool, reference: bool) -> list[str]:
        """The inputs a pair carries that this template has no words for."""
        wanted = {"criteria": criteria, "reference": reference}
        return [k for k, given in wanted.items() if given and getattr(self, k) is None]

    def render(self, shown: ShownPair, question: str | None = None) -> tuple[str, str]:
        """Return (system, user) texts for one order of one pair."""
        tags = _tags(shown)
        parts = [
            # A question (a constitution principle's) is the operator's, not fenced
            # data, but it must not be able to open or close a fence either.
            defuse_tags(question, tags) if question else self.instructions
        ]
        if shown.criteria is not None:
            parts += [_words(self, "criteria"), _fence("criteria", shown.criteria, tags)]
        if self.conversation is not None and is_multi_turn(shown.prompt):
            parts.append(self.conversation)
        parts.append(_fence("prompt", shown.prompt, tags))
        if shown.reference is not None:
            parts += [_words(self, "reference"), _fence("reference", shown.reference, tags)]
        parts += [
            _fence("response_1", shown.first, tags),
            _fence("response_2", shown.second, tags),
            self.closing,
        ]
        return self.system, "\n\n".join(parts)

    def shots(self, shown: ShownPair) -> list[tuple[str, str]]:
        """The worked examples as (user, assistant) turns to show before the request.

        The template's examples, then (with ``constitution_examples``) the
        pair's, in order while their estimated tokens fit ``few_shot_tokens``.
        """
        examples: list[WorkedExample] = [*self.preference_examples]
        if self.constitution_examples:
            examples += shown.examples
        turns: list[tuple[str, str]] = []
        spent = 0
        for index, example in enumerate(examples):
            turn = self._shot(example, preferred_first=index % 2 == 0)
            spent += estimate_tokens(turn[0]) + estimate_tokens(turn[1])
            if spent > self.few_shot_tokens:
                break
            turns.append(turn)
        return turns

    def shot_tokens(self, shown: ShownPair) -> int:
        """The estimated tokens of the worked examples a call about ``shown`` sends."""
        return sum(
            estimate_tokens(user) + estimate_tokens(answer) for user, answer in self.shots(shown)
        )

    def _shot(self, example: WorkedExample, *, preferred_first: bool) -> tuple[str, str]:
        """One example laid out like a request, the preferred answer first or second.

        Alternating the side the preferred answer is shown on keeps the
        examples from teaching a position.
        """
        a, b = example.response_a, example.response_b
        preferred, other = (a, b) if example.choice == "a" else (b, a)
        first, second = (preferred, other) if preferred_first else (other, preferred)
        _, user = self.render(ShownPair(example.prompt, first, second))
        verdict = {
            "rationale": example.explanation or "",
            "winner": "1" if preferred_first else "2",
        }
        return user, json.dumps(verdict, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """The file's content as plain values (what the content hash covers)."""
        data = self._content()
        if self.constitution_examples:  # left out when off: the hashes of older files stand
            data["constitution_examples"] = True
        return data

    def _content(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.file_version,
            "description": self.description,
            "system": self.system,
            "instructions": self.instructions,
            "closing": self.closing,
            "criteria": self.criteria,
            "reference": self.reference,
            "conversation": self.conversation,
            "preference_examples": [e.to_dict() for e in self.preference_examples],
            "few_shot_tokens": self.few_shot_tokens,
        }


def prior_turns(shots: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Worked examples as chat messages: each a user turn, then the judge's answer."""
    return [
        message
        for user, answer in shots
        for message in ({"role": "user", "content": user}, {"role": "assistant", "content": answer})
    ]


def is_multi_turn(prompt: Text) -> bool:
    """Whether a prompt is a conversation with an earlier assistant turn."""
    return not isinstance(prompt, str) and any(m.role == "assistant" for m in prompt)


def _tags(shown: ShownPair) -> tuple[str, ...]:
    extra = ("criteria",) * (shown.criteria is not None)
    return FENCE_TAGS + extra + ("reference",) * (shown.reference is not None)


def _fence(tag: str, value: Text, tags: tuple[str, ...]) -> str:
    return f"<{tag}>\n{defuse_tags(render_text(value), tags)}\n</{tag}>"


def _words(template: PairwiseTemplate, part: str) -> str:
    words: str | None = getattr(template, part)
    if words is None:
        raise JudgeConfigError(f"template {template.ref!r} has no {part!r} section")
    return words


def content_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- files


class _Loader(yaml.SafeLoader):
    """Safe YAML; a repeated key in one mapping is an error, not a silent overwrite."""


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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read the file: {exc}", file=str(path), field=None) from None
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
    return Path(__file__).resolve().parents[1] / "templates"


# ---------------------------------------------------------------- the process's templates

TEMPLATES: dict[str, PairwiseTemplate] = {}
"""Templates made in code (plugins, tests), by ref; looked up before the files."""


class _Library:
    """The folders' templates, re-read when a file changes.

    Whether one changed is checked (a stat per file) at most once every
    ``RECHECK_S``: every call and every screened line looks a template up,
    and a stat of each file each time cost more than the rest of screening.
    """

    RECHECK_S = 1.0

    def __init__(self) -> None:
        self.folders: tuple[Path, ...] = (default_templates_dir(),)
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._scan = TemplateScan()
        self._checked = -math.inf

    def scan(self) -> TemplateScan:
        now = time.monotonic()
        if now - self._checked < self.RECHECK_S and self._stamp is not None:
            return self._scan
        self._checked = now
        stamp: list[tuple[str, int, int]] = []
        for folder in self.folders:
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.suffix in (".yaml", ".yml"):
                        info = path.stat()
                        stamp.append((str(path), info.st_mtime_ns, info.st_size))
        with self._lock:
            if tuple(stamp) != self._stamp:
                self._scan, self._stamp = scan_templates(*self.folders), tuple(stamp)
            return self._scan


_LIBRARY = _Library()


def use_template_folders(folders: Sequence[Path]) -> None:
    """Serve the templates of these folders (the service's start-up sets them from settings)."""
    _LIBRARY.folders = tuple(folders)
    _LIBRARY._stamp = None
    _LIBRARY._checked = -math.inf


def template_scan() -> TemplateScan:
    """The templates and named criteria this process serves, and the problems of its files."""
    return _LIBRARY.scan()


def get_template(name: str) -> PairwiseTemplate:
    """A template by ref (what a verdict stores) or by id (its current file).

    A ref whose file has changed since is refused: work queued under some
    words is never judged under others.
    """
    if name in TEMPLATES:
        return TEMPLATES[name]
    scan = template_scan()
    found = scan.by_ref(name) or scan.templates.get(name)
    if found is not None:
        return found
    base = name.split("@", 1)[0]
    if "@" in name and base in scan.templates:
        raise JudgeConfigError(
            f"template {base!r} changed since this work was queued (queued under {name}, "
            f"now {scan.templates[base].ref}); queue it again"
        )
    known = ", ".join(sorted([*scan.templates, *TEMPLATES])) or "none"
    broken = "; ".join(p.message for p in scan.problems)
    raise JudgeConfigError(
        f"unknown prompt template {name!r}; known: {known}"
        + (f"; problems: {broken}" if broken else "")
    )


def __getattr__(name: str) -> Any:
    """``PAIRWISE_V1``: the default template, read from its file when first asked for."""
    if name == "PAIRWISE_V1":
        return get_template(DEFAULT_TEMPLATE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def template_ref(name: str) -> str:
    """The ref a template name (id or ref) stands for now."""
    return get_template(name).ref
