"""The judge-quality report as terminal tables: one column per judge (or batch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from app.reports import review_tables

Block = dict[str, Any]


def estimate(value: dict[str, Any], percent: bool = True) -> str:
    """``71.7% [65.2, 77.8] n=198`` (or ``0.551 [0.453, 0.644] n=198``); ``—`` with nothing."""
    if value["value"] is None:
        return f"— n={value['n']}"
    low, high = value["ci"] or (value["value"], value["value"])
    if percent:
        return f"{value['value']:.1%} [{low * 100:.1f}, {high * 100:.1f}] n={value['n']}"
    return f"{value['value']:.3f} [{low:.3f}, {high:.3f}] n={value['n']}"


def _cost(block: Block) -> str:
    cost = block["cost"]
    per_1000 = cost["per_1000_labels_usd"]
    unpriced = f", {cost['unpriced_calls']} unpriced" if cost["unpriced_calls"] else ""
    total = f"${cost['usd']:.4f} for {cost['calls']} calls{unpriced}"
    return f"${per_1000:.4f} ({total})" if per_1000 is not None else f"— ({total})"


def _calibration(block: Block) -> str:
    calibration = block["calibration"]
    if calibration["ece"] is None:
        return f"— n={calibration['n']}"
    return f"ECE {calibration['ece']:.3f} n={calibration['n']}"


ROWS: list[tuple[str, Callable[[Block], str]]] = [
    (
        "comparisons",
        lambda b: "{comparisons} ({labeled} labeled, {failed} failed, {pending} pending)".format(
            **b["counts"]
        ),
    ),
    ("winners a / b / tie", lambda b: "{a} / {b} / {tie}".format(**b["winners"])),
    ("with gold", lambda b: str(b["counts"]["with_gold"])),
    ("agreement, ties counted", lambda b: estimate(b["agreement"]["with_ties"])),
    ("agreement, ties excluded", lambda b: estimate(b["agreement"]["without_ties"])),
    ("Cohen's kappa", lambda b: estimate(b["agreement"]["kappa"], percent=False)),
    ("position consistency", lambda b: estimate(b["position"]["consistency"])),
    ("inconsistent: first favoured", lambda b: estimate(b["position"]["favoured_first"])),
    ("longer wins (judge)", lambda b: estimate(b["length"]["judge_prefers_longer"])),
    ("longer wins (gold)", lambda b: estimate(b["length"]["gold_prefers_longer"])),
    ("tie rate", lambda b: estimate(b["tie_rate"])),
    ("failure rate", lambda b: estimate(b["failure_rate"])),
    ("calibration", _calibration),
    ("cost per 1,000 labels", _cost),
]


def _title(block: Block) -> str:
    if block.get("template"):
        return f"{block['template']}\n({block['judge']})"
    if block["batch"] is None:
        return str(block["judge"])
    return f"{block['batch']['name']}\n({block['judge']})"


def metrics_table(title: str, blocks: list[Block]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("metric", style="bold")
    for item in blocks:
        # Text, not markup: names come from user data ("[b]" must show as typed).
        table.add_column(Text(_title(item)), overflow="fold")
    for name, cell in ROWS:
        if any(item["cost"] is None for item in blocks) and cell is _cost:
            continue  # template rows are not costed (calls are, per judge and batch)
        table.add_row(name, *(cell(item) for item in blocks))
    return table


def reliability_table(blocks: list[Block]) -> Table:
    """Non-empty calibration bins per judge: mean confidence against accuracy."""
    table = Table(title="Calibration (confidence vs. agreement with gold)", title_justify="left")
    for column in ("judge", "bin", "count", "mean confidence", "accuracy"):
        table.add_column(column)
    for item in blocks:
        for b in item["calibration"]["bins"]:
            if b["count"]:
                table.add_row(
                    Text(str(item["judge"])),
                    # 3 significant digits: with --bins 20, 0.05-0.1 (not 0.1-0.1).
                    f"{b['lower']:.3g}-{b['upper']:.3g}",
                    str(b["count"]),
                    f"{b['mean_confidence']:.3f}",
                    f"{b['accuracy']:.3f}",
                )
    return table


def category_table(title: str, blocks: list[Block]) -> Table:
    """Agreement with gold per metadata.category, one row per (judge or batch, category)."""
    table = Table(title=title, title_justify="left")
    for column in ("judge", "category", "gold pairs", "ties counted", "ties excluded", "kappa"):
        table.add_column(column, overflow="fold")
    for item in blocks:
        for row in item.get("by_category") or []:
            agreement = row["agreement"]
            # Text, not markup: names come from user data ("[b]" must show as typed).
            table.add_row(
                Text(_title(item)),
                Text("(none)" if row["category"] is None else str(row["category"])),
                str(row["gold_pairs"]),
                estimate(agreement["with_ties"]),
                estimate(agreement["without_ties"]),
                estimate(agreement["kappa"], percent=False),
            )
    return table


def agreement_table(pairs: list[dict[str, Any]]) -> Table:
    table = Table(title="Agreement between judges", title_justify="left")
    for column in ("judge", "judge", "pairs", "agreement", "kappa"):
        table.add_column(column)
    for item in pairs:
        table.add_row(
            Text(item["judge_a"]),
            Text(item["judge_b"]),
            str(item["pairs"]),
            estimate(item["agreement"]),
            estimate(item["kappa"], percent=False),
        )
    return table


def render(report: dict[str, Any]) -> RenderableType:
    """Everything in the report, as rich renderables for a terminal."""
    gold, settings = report["gold"], report["settings"]
    header = Text(
        f"gold labels: {gold['pairs']} pairs (a {gold['winners']['a']}, b {gold['winners']['b']}, "
        f"tie {gold['winners']['tie']}; imported {gold['sources']['import']}, reviewed "
        f"{gold['sources']['review']}). Intervals: {settings['confidence_level']:.0%} bootstrap, "
        f"{settings['resamples']} resamples, seed {settings['seed']}."
    )
    parts: list[RenderableType] = [header]
    if not report["judges"]:
        parts.append(Text("no comparisons in scope"))
        return Group(*parts)
    parts.append(metrics_table("Per judge", report["judges"]))
    if report["batches"]:
        parts.append(metrics_table("Per batch", report["batches"]))
    templates = report.get("templates") or []
    if len({item["template"] for item in templates}) > 1:
        parts.append(metrics_table("Per template (same judge, other words)", templates))
    if any(item.get("by_category") for item in report["judges"]):
        parts.append(category_table("Agreement with gold by category", report["judges"]))
    if any(item["calibration"]["n"] for item in report["judges"]):
        parts.append(reliability_table(report["judges"]))
    if report["judge_agreement"]:
        parts.append(agreement_table(report["judge_agreement"]))
    parts.extend(review_tables.text_tables(report, estimate))
    return Group(*parts)
