"""The dataset card: README.md with the YAML header the Hugging Face Hub reads."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import yaml

from app.export.build import Stats
from app.export.options import ContradictionRule, ExportOptions, Format, Kind

SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
]


def kto_weights(desirable: int, undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) keeping λ_D·n_D / (λ_U·n_U) within [1, 4/3].

    The range is the KTO paper's advice, which TRL's KTOTrainer repeats. One
    weight stays 1; the other is rounded so the ratio stays inside the range.
    With no rows on one side there is nothing to balance: (1, 1).
    """
    if desirable == 0 or undesirable == 0:
        return 1.0, 1.0
    ratio = desirable / undesirable
    if ratio < 1:
        weight = math.ceil(undesirable / desirable * 10_000) / 10_000
        # Rounded to four places the product can fall one float ulp short of
        # the bound (8.2 * 15 / 123 < 1): one more step puts it inside.
        if weight * desirable / undesirable < 1:
            weight = round(weight + 0.0001, 4)
        return weight, 1.0
    if ratio > 4 / 3:
        weight = math.ceil(ratio * 0.75 * 10_000) / 10_000
        if desirable / (weight * undesirable) > 4 / 3:
            weight = round(weight + 0.0001, 4)
        return 1.0, weight
    return 1.0, 1.0


def _size_category(rows: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "n>1M"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_card(options: ExportOptions, fmt: Format, stats: Stats, files: dict[str, str]) -> str:
    """The card's text: a YAML header, then counts, provenance and filters."""
    header: dict[str, object] = {
        "tags": ["referee", options.kind.value, "rlaif", "ai-feedback"],
        "task_categories": ["text-generation"],
        "size_categories": [_size_category(stats.rows)],
    }
    if fmt is not Format.HF:
        header["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": path} for split, path in files.items()],
            }
        ]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {options.kind.value.upper()} dataset exported by Referee",
        "",
        f"Exported {datetime.now(UTC).isoformat(timespec='seconds')}, "
        f"{options.shape.value} shape, {fmt.value} format.",
        "",
        "## Counts",
        "",
        "| split | rows |",
        "|---|---|",
        *(f"| {split} | {count} |" for split, count in sorted(stats.splits.items())),
        "",
        f"- Rows by source: {_counts(stats.sources)}",
        f"- Duplicates dropped: {stats.duplicates}",
    ]
    lines += _kind_lines(options, stats)
    lines += [
        "",
        "## Provenance",
        "",
        f"- Judges: {_counts(stats.judges)}",
        f"- Prompt templates and rubrics: {_counts(stats.templates)}",
        f"- Constitution versions: {_counts(stats.constitutions)}",
        f"- Verdicts read: {stats.verdicts}; position-consistency rate "
        f"{_percent(stats.consistency_rate)} (of verdicts judged in both orders); "
        f"tie rate {_percent(stats.tie_rate)}",
        *_lineage_lines(stats.lineage),
        "",
        "## Filters",
        "",
        *(_filter_lines(options)),
        "",
    ]
    return "\n".join(lines)


def _lineage_lines(lineage: list[dict[str, Any]]) -> list[str]:
    """A round export: the round, then each parent, with what made its data."""
    if not lineage:
        return []
    lines = ["", "## Round lineage", ""]
    for depth, found in enumerate(lineage):
        role = "this export" if depth == 0 else "parent" if depth == 1 else f"ancestor {depth}"
        checkpoint = f" at checkpoint `{found['checkpoint']}`" if found["checkpoint"] else ""
        lines.append(
            f"{depth + 1}. round `{found['name']}` ({role}): policy `{found['policy']}`"
            f"{checkpoint}; strategy {found['strategy']}; judge `{found['judge']}`; "
            f"{found['prompt_count']} prompts from `{found['prompts_source']}` "
            f"(prompt set {found['prompt_set_key'][:12]}); stage {found['stage']}"
        )
    return lines


def _counts(counter: dict[str, int]) -> str:
    if not counter:
        return "none"
    return ", ".join(f"`{name}` ({count})" for name, count in sorted(counter.items()))


def _kind_lines(options: ExportOptions, stats: Stats) -> list[str]:
    if options.kind is Kind.DPO:
        return [f"- Ties left out (no chosen response): {stats.ties}"]
    if options.kind is Kind.KTO:
        desirable_weight, undesirable_weight = kto_weights(stats.desirable, stats.undesirable)
        return [
            f"- Desirable: {stats.desirable}; undesirable: {stats.undesirable}",
            f"- Suggested KTOConfig: desirable_weight={desirable_weight}, "
            f"undesirable_weight={undesirable_weight}",
            f"- Pairwise losers left out (no failing rating, verdict not confident enough): "
            f"{stats.losers_left_out}",
            f"- Contradictions: {contradictions(options, stats)}",
        ]
    return []


_RULES = {
    ContradictionRule.DROP: "every row of such a pair left out",
    ContradictionRule.MAJORITY: "the majority label kept, an even split left out",
    ContradictionRule.KEEP: "all rows kept",
}


def contradictions(options: ExportOptions, stats: Stats) -> str:
    """One sentence on KTO contradictions and what the export's rule did with them."""
    return (
        f"{stats.contradictions} (prompt, completion) pairs labeled both desirable and "
        f"undesirable; rule {options.kto_contradictions.value} "
        f"({_RULES[options.kto_contradictions]}): {stats.contradiction_rows_dropped} rows left out"
    )


def _filter_lines(options: ExportOptions) -> list[str]:
    described = options.filters.describe()
    lines = [f"- {name}: {value}" for name, value in described.items()] or ["- none"]
    if options.round is not None:
        lines.append(f"- sources: round {options.round}")
    else:
        lines.append(f"- sources: {', '.join(s.value for s in options.chosen_sources)}")
    if options.kind is Kind.KTO:
        lines.append(f"- loser_min_confidence: {options.loser_min_confidence}")
        lines.append(f"- kto_contradictions: {options.kto_contradictions.value}")
    if options.test_size:
        lines.append(f"- test split: {options.test_size} by {options.split_by.value} hash")
    return lines
