"""Constitutions: versioned sets of principles to critique, revise and compare responses by.

A constitution is data, kept as YAML in the repository's ``constitutions/``
folder. The schema (every text is stripped of surrounding whitespace and
must not be empty; unknown keys are errors)::

    id: harmlessness                # slug: lowercase letters and digits, joined by - or _
    version: "1"                    # yours to bump; an unquoted integer is accepted
    description: What it is for.
    principles:                     # at least one
      - id: privacy                 # slug, unique in the file
        critique_request: ...       # asks a model to find problems in a response
        revision_request: ...       # asks it to rewrite the response to fix them
        preference_question: ...    # the multiple-choice question between two responses
        weight: 1                   # optional, > 0: its probability mass when sampling
        tags: [privacy]             # optional strings
    critique_examples:              # optional few-shots for critique -> revision
      - prompt: ...                 # a string, or a list of {role, content} messages
        response: ...
        critique: ...
        needs_revision: true
        revision: ...               # required when needs_revision is true, absent otherwise
    preference_examples:            # optional few-shots for choosing between two responses
      - prompt: ...
        response_a: ...
        response_b: ...
        choice: a                   # a or b
        explanation: ...            # optional

The ``version`` is what people read; :attr:`Constitution.content_hash` is
what results are keyed by: it covers the whole content, so even a typo fixed
under the same version gives a new hash and never reuses old results.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from judges.cai._schema import ConstitutionError, parse_constitution
from judges.cai._yaml import read_yaml, write_yaml
from judges.errors import JudgeConfigError
from judges.types import Text

__all__ = [
    "Constitution",
    "ConstitutionError",
    "ConstitutionScan",
    "CritiqueExample",
    "PreferenceExample",
    "Principle",
    "constitution_from_dict",
    "default_constitutions_dir",
    "load_constitution",
    "load_constitutions",
    "scan_constitutions",
]


@dataclass(frozen=True)
class Principle:
    """One principle: how to critique a response, how to revise it, how to compare two."""

    id: str
    critique_request: str
    revision_request: str
    preference_question: str
    weight: float = 1.0
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise JudgeConfigError(f"principle {self.id!r}: weight must be above 0")

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults included, as plain JSON-able values."""
        return {
            "id": self.id,
            "critique_request": self.critique_request,
            "revision_request": self.revision_request,
            "preference_question": self.preference_question,
            "weight": float(self.weight),
            "tags": list(self.tags),
        }


def _text_out(text: Text) -> str | list[dict[str, str]]:
    if isinstance(text, str):
        return text
    return [{"role": m.role, "content": m.content} for m in text]


@dataclass(frozen=True)
class CritiqueExample:
    """A few-shot critique (and revision, when one was needed) of one response."""

    prompt: Text
    response: str
    critique: str
    needs_revision: bool
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values; ``revision`` is None when none was needed."""
        return {
            "prompt": _text_out(self.prompt),
            "response": self.response,
            "critique": self.critique,
            "needs_revision": self.needs_revision,
            "revision": self.revision,
        }


@dataclass(frozen=True)
class PreferenceExample:
    """A few-shot choice between two responses to one prompt."""

    prompt: Text
    response_a: str
    response_b: str
    choice: Literal["a", "b"]
    explanation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values."""
        return {
            "prompt": _text_out(self.prompt),
            "response_a": self.response_a,
            "response_b": self.response_b,
            "choice": self.choice,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Constitution:
    """A named, versioned set of principles with optional few-shot examples.

    Construction checks what sampling and lookup rely on (at least one
    principle, unique ids); :func:`load_constitution` validates everything.
    """

    id: str
    version: str
    description: str
    principles: tuple[Principle, ...]
    critique_examples: tuple[CritiqueExample, ...] = ()
    preference_examples: tuple[PreferenceExample, ...] = ()

    def __post_init__(self) -> None:
        if not self.principles:
            raise JudgeConfigError(f"constitution {self.id!r} has no principles")
        ids = [p.id for p in self.principles]
        if len(set(ids)) != len(ids):
            raise JudgeConfigError(f"constitution {self.id!r} repeats a principle id: {ids}")

    def to_dict(self) -> dict[str, Any]:
        """The whole content, defaults included, as plain JSON-able values."""
        return {
            "id": self.id,
            "version": self.version,
            "description": self.description,
            "principles": [p.to_dict() for p in self.principles],
            "critique_examples": [e.to_dict() for e in self.critique_examples],
            "preference_examples": [e.to_dict() for e in self.preference_examples],
        }

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (hex) of a canonical JSON of :meth:`to_dict`: any edit changes it."""
        canonical = json.dumps(
            self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def ref(self) -> str:
        """``<id>@<version>:<first 12 hex of the content hash>``, for logs and labels."""
        return f"{self.id}@{self.version}:{self.content_hash[:12]}"

    def fingerprint(self) -> dict[str, str]:
        """What a result stores to say which constitution it was made under."""
        return {"id": self.id, "version": self.version, "content_hash": self.content_hash}

    def principle(self, pid: str) -> Principle:
        """The principle ``pid``, or a :class:`JudgeConfigError` that names the known ids."""
        for candidate in self.principles:
            if candidate.id == pid:
                return candidate
        known = ", ".join(p.id for p in self.principles)
        raise JudgeConfigError(f"constitution {self.id!r} has no principle {pid!r}; known: {known}")

    def sample_principles(self, seed: int | str, k: int = 1) -> tuple[Principle, ...]:
        """``k`` distinct principles drawn by weight, the same ones for the same seed.

        Each draw picks among the principles not yet drawn with probability
        proportional to their weights (without replacement), using
        ``random.Random(seed)``, whose seeding from an int or a str is stable
        across runs and Python versions. ``k`` must be between 1 and the
        number of principles.
        """
        if isinstance(k, bool) or not 1 <= k <= len(self.principles):
            raise JudgeConfigError(
                f"cannot sample {k} principles from constitution {self.id!r}: "
                f"k must be between 1 and {len(self.principles)}"
            )
        rng = random.Random(seed)
        pool = list(self.principles)
        drawn: list[Principle] = []
        for _ in range(k):
            bounds = list(itertools.accumulate(p.weight for p in pool))
            index = bisect.bisect_right(bounds, rng.random() * bounds[-1])
            drawn.append(pool.pop(min(index, len(pool) - 1)))
        return tuple(drawn)


def constitution_from_dict(data: object, *, source: str | Path | None = None) -> Constitution:
    """Validate parsed YAML/JSON data and build a :class:`Constitution`.

    ``source`` names the file in error messages. Raises
    :class:`ConstitutionError` naming the principle (or example) and field.
    """
    parsed = parse_constitution(data, None if source is None else str(source))
    principles = tuple(Principle(**p) for p in parsed.pop("principles"))
    critique_examples = tuple(CritiqueExample(**e) for e in parsed.pop("critique_examples"))
    preference_examples = tuple(PreferenceExample(**e) for e in parsed.pop("preference_examples"))
    return Constitution(
        principles=principles,
        critique_examples=critique_examples,
        preference_examples=preference_examples,
        **parsed,
    )


def load_constitution(path: str | Path) -> Constitution:
    """Read and validate one constitution file (schema in this module's docstring).

    Raises :class:`ConstitutionError` naming the file, and the line (YAML
    syntax) or the principle and field (content) at fault.
    """
    path = Path(path)
    data = read_yaml(path)
    return constitution_from_dict(data, source=path)


def to_yaml(constitution: Constitution, *, header: str | None = None) -> str:
    """YAML that :func:`load_constitution` reads back as an equal value.

    ``header`` lines are written first as ``#`` comments (comments are not
    content: they do not change the hash).
    """
    return write_yaml(constitution.to_dict(), header=header)


@dataclass(frozen=True)
class ConstitutionScan:
    """What a folder holds: the valid constitutions by id, their files, and every problem."""

    constitutions: dict[str, Constitution] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    problems: tuple[ConstitutionError, ...] = ()


def scan_constitutions(*folders: str | Path) -> ConstitutionScan:
    """Load every ``*.yaml``/``*.yml`` file in the folders, collecting errors instead of raising.

    A bad file is left out and reported in ``problems``. An id defined by two
    files is ambiguous: neither is served, and the problem names both files.
    The one exception is a file in a later folder that is a verbatim copy
    (same content hash) of the earlier one, as when a folder that adds to
    the shipped constitutions started as a copy of them: it is the same
    constitution, served once.
    """
    constitutions: dict[str, Constitution] = {}
    files: dict[str, Path] = {}
    problems: list[ConstitutionError] = []
    clashes: set[str] = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            problems.append(ConstitutionError("not a folder of constitutions", file=str(folder)))
            continue
        for path in sorted(
            p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
        ):
            try:
                constitution = load_constitution(path)
            except ConstitutionError as exc:
                problems.append(exc)
                continue
            first = files.get(constitution.id)
            if first is None:
                constitutions[constitution.id] = constitution
                files[constitution.id] = path
            elif not _same_copy(first, path, constitutions[constitution.id], constitution):
                problems.append(_clash(constitution.id, first, path))
                clashes.add(constitution.id)
    for cid in clashes:
        del constitutions[cid], files[cid]
    return ConstitutionScan(constitutions, files, tuple(problems))


def _same_copy(first: Path, path: Path, earlier: Constitution, later: Constitution) -> bool:
    return first.parent != path.parent and earlier.content_hash == later.content_hash


def _clash(cid: str, first: Path, second: Path) -> ConstitutionError:
    return ConstitutionError(
        f"constitution id {cid!r} is already defined in {first}; rename one of the two "
        "(neither is used while both exist)",
        file=str(second),
        field="id",
    )


def load_constitutions(folder: str | Path) -> dict[str, Constitution]:
    """Every constitution in ``folder`` by id; the first problem found is raised.

    Use :func:`scan_constitutions` to keep the good ones when a file is bad.
    """
    scan = scan_constitutions(folder)
    if scan.problems:
        raise scan.problems[0]
    return scan.constitutions


def default_constitutions_dir() -> Path:
    """The repository's ``constitutions/`` folder, beside the ``judges`` package.

    It exists where the project is installed from a checkout (editable) or
    the folder is copied next to the package; elsewhere point the service
    at one (``REFEREE_CONSTITUTIONS_DIR``).
    """
    return Path(__file__).resolve().parents[2] / "constitutions"
