"""The report's tables as rows of cells, each cell tied to its place in the report JSON.

A cell knows its JSON pointer (``/judges/0/agreement/with_ties/value``), its
exact value and how it is formatted, so the page can carry all three and a
reader or a test can check what is shown against ``referee report --json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import InvalidInputError

Kind = Literal["pct", "num", "int", "usd"]
MISSING = "—"


def format_number(value: float | int | None, kind: Kind) -> str:
    """The text shown for a number: shares as percents, κ/ECE to 3 places, USD to 4."""
    if value is None:
        return MISSING
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "num":
        return f"{value:.3f}"
    if kind == "usd":
        return f"${value:,.4f}"
    return f"{value:,}"


@dataclass(frozen=True)
class Number:
    """One shown number and where it lives in the report."""

    pointer: str
    value: float | int | None
    kind: Kind

    @property
    def text(self) -> str:
        return format_number(self.value, self.kind)

    @property
    def raw(self) -> str:
        return json.dumps(self.value)


@dataclass(frozen=True)
class Estimate:
    """A value with its bootstrap interval (absent when there is no data) and denominator."""

    value: Number
    low: Number | None
    high: Number | None
    n: Number


Cell = Number | Estimate


@dataclass(frozen=True)
class Column:
    """A column: its heading, the path inside a row's object, how to show the value."""

    title: str
    path: tuple[str, ...]
    kind: Kind
    estimate: bool = False


def _est(title: str, *path: str, kind: Kind = "pct") -> Column:
    return Column(title, path, kind, estimate=True)


def _num(title: str, *path: str, kind: Kind = "int") -> Column:
    return Column(title, path, kind)


@dataclass(frozen=True)
class Spec:
    """What a table shows: its id, heading, a note on the measures, and its columns."""

    id: str
    title: str
    note: str
    label_titles: tuple[str, ...]
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Row:
    labels: tuple[str, ...]
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    spec: Spec
    rows: tuple[Row, ...]


AGREEMENT = Spec(
    "table-agreement",
    "Agreement with gold labels",
    "Ties counted: a tie is a third class (MT-Bench “with tie”). Ties excluded: pairs where "
    "neither the verdict nor gold is a tie. κ: Cohen's kappa over a/b/tie. ECE: expected "
    "calibration error of the verdict confidence.",
    ("Judge",),
    (
        _num("Gold pairs", "counts", "with_gold"),
        _est("Agreement, ties counted", "agreement", "with_ties"),
        _est("Agreement, ties excluded", "agreement", "without_ties"),
        _est("Cohen's κ", "agreement", "kappa", kind="num"),
        _num("ECE", "calibration", "ece", kind="num"),
        _num("Verdicts with confidence", "calibration", "n"),
    ),
)
BIAS = Spec(
    "table-bias",
    "Position and length bias",
    "Position consistency: share of pairs judged in both orders whose orders agree. First "
    "position favoured: among the inconsistent ones, the share where the first-shown response "
    "won more often. Longer preferred: among decided pairs of unequal length.",
    ("Judge",),
    (
        _est("Position consistency", "position", "consistency"),
        _num("Inconsistent", "position", "inconsistent"),
        _est("First position favoured", "position", "favoured_first"),
        _est("Judge prefers longer", "length", "judge_prefers_longer"),
        _est("Gold prefers longer", "length", "gold_prefers_longer"),
        _est("Tie rate", "tie_rate"),
    ),
)
VOLUME = Spec(
    "table-volume",
    "Volume and failures",
    "Failure rate: failed / (labeled + failed); pending pairs are not counted.",
    ("Judge",),
    (
        _num("Comparisons", "counts", "comparisons"),
        _num("Labeled", "counts", "labeled"),
        _num("Failed", "counts", "failed"),
        _num("Pending", "counts", "pending"),
        _est("Failure rate", "failure_rate"),
        _num("A wins", "winners", "a"),
        _num("B wins", "winners", "b"),
        _num("Ties", "winners", "tie"),
    ),
)
COST = Spec(
    "table-cost",
    "Cost",
    "All judge calls of these comparisons, failed attempts included.",
    ("Judge",),
    (
        _num("Judge calls", "cost", "calls"),
        _num("Unpriced calls", "cost", "unpriced_calls"),
        _num("Labels", "cost", "labels"),
        _num("Cost", "cost", "usd", kind="usd"),
        _num("Per 1,000 labels", "cost", "per_1000_labels_usd", kind="usd"),
    ),
)
BATCHES = Spec(
    "table-batches",
    "By batch (source)",
    "One row per input batch and judge. Comparisons made over HTTP outside a batch are "
    "counted under their judge only.",
    ("Batch", "Judge"),
    (
        _num("Gold pairs", "counts", "with_gold"),
        _est("Agreement, ties counted", "agreement", "with_ties"),
        _est("Agreement, ties excluded", "agreement", "without_ties"),
        _est("Cohen's κ", "agreement", "kappa", kind="num"),
        _est("Position consistency", "position", "consistency"),
        _est("Tie rate", "tie_rate"),
        _est("Failure rate", "failure_rate"),
        _num("Per 1,000 labels", "cost", "per_1000_labels_usd", kind="usd"),
    ),
)
PAIRS = Spec(
    "table-judge-agreement",
    "Judges against each other",
    "Over the pairs both judges labeled (current verdicts, ties as a class).",
    ("Judge A", "Judge B"),
    (
        _num("Common pairs", "pairs"),
        _est("Agreement", "agreement"),
        _est("Cohen's κ", "kappa", kind="num"),
    ),
)
CATEGORIES = Spec(
    "table-categories",
    "By category",
    "Category: the comparison's metadata.category.",
    ("Judge", "Category"),
    (
        _num("Gold pairs", "gold_pairs"),
        _est("Agreement, ties counted", "agreement", "with_ties"),
        _est("Agreement, ties excluded", "agreement", "without_ties"),
        _est("Cohen's κ", "agreement", "kappa", kind="num"),
    ),
)


def lookup(obj: Any, path: Sequence[str], pointer: str) -> Any:
    """Follow ``path`` into the report as a JSON pointer does (list items by index)."""
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            raise InvalidInputError(f"report has no {pointer}", field=pointer)
    return obj


def number(obj: Any, base: str, path: Sequence[str], kind: Kind) -> Number:
    """The number at ``path`` inside ``obj`` (which sits at ``base`` in the report)."""
    pointer = "/".join((base, *path))
    value = lookup(obj, path, pointer)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise InvalidInputError(f"report {pointer} is not a number: {value!r}", field=pointer)
    return Number(pointer, value, kind)


def _cell(obj: Any, base: str, column: Column) -> Cell:
    path = column.path
    if not column.estimate:
        return number(obj, base, path, column.kind)
    has_ci = lookup(obj, (*path, "ci"), "/".join((base, *path, "ci"))) is not None
    return Estimate(
        value=number(obj, base, (*path, "value"), column.kind),
        low=number(obj, base, (*path, "ci", "0"), column.kind) if has_ci else None,
        high=number(obj, base, (*path, "ci", "1"), column.kind) if has_ci else None,
        n=number(obj, base, (*path, "n"), "int"),
    )


def table(spec: Spec, entries: Iterable[tuple[Any, str, tuple[str, ...]]]) -> Table:
    """A table of ``(object, its pointer, row labels)`` entries."""
    rows = tuple(
        Row(labels, tuple(_cell(obj, base, column) for column in spec.columns))
        for obj, base, labels in entries
    )
    return Table(spec, rows)


def _entries(
    items: Sequence[Any], base: str, label_paths: Sequence[Sequence[str]]
) -> list[tuple[Any, str, tuple[str, ...]]]:
    """Each item with its pointer and its row labels (names read at ``label_paths``)."""
    return [
        (item, f"{base}/{i}", tuple(_name(item, path) for path in label_paths))
        for i, item in enumerate(items)
    ]


def _name(obj: Any, path: Sequence[str]) -> str:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return "(none)" if obj is None else str(obj)


def tables(report: dict[str, Any]) -> list[Table]:
    """Every table of the page; the category table only when the report has categories."""
    judges = lookup(report, ("judges",), "/judges")
    per_judge = _entries(judges, "/judges", [("judge",)])
    result = [table(spec, per_judge) for spec in (AGREEMENT, BIAS, VOLUME, COST)]
    batches = lookup(report, ("batches",), "/batches")
    result.append(table(BATCHES, _entries(batches, "/batches", [("batch", "name"), ("judge",)])))
    pairs = lookup(report, ("judge_agreement",), "/judge_agreement")
    result.append(table(PAIRS, _entries(pairs, "/judge_agreement", [("judge_a",), ("judge_b",)])))
    per_category = [
        (entry, pointer, (_name(block, ["judge"]), *labels))
        for i, block in enumerate(judges)
        for entry, pointer, labels in _entries(
            block.get("by_category") or [], f"/judges/{i}/by_category", [("category",)]
        )
    ]
    if per_category:
        result.append(table(CATEGORIES, per_category))
    return result
