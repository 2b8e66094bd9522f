"""Agreement with gold by metadata.category, through `referee label`, the builder and HTTP.

Ten human-labeled pairs in two categories and none; a fake judge scripted to
give known answers, so every figure below is worked out by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from app.reports.metrics import Bootstrap, agreement, confusion
from app.reports.text import agreement_table, category_table, reliability_table
from tests.fake_provider import FakeProvider
from tests.fake_provider.policies import gold_answers
from tests.test_report import GOLD, provider_env, referee

# (category metadata, human label, the judge's answer); None: no metadata at all.
PAIRS: list[tuple[Any, str | None, str]] = [
    ({"category": "coding"}, "a", "a"),
    ({"category": "coding"}, "b", "b"),
    ({"category": "coding"}, "a", "a"),
    ({"category": "coding"}, "b", "a"),
    ({"category": "writing"}, "a", "a"),
    ({"category": "writing"}, "b", "b"),
    ({"category": "writing"}, "tie", "tie"),
    ({"category": "writing"}, "tie", "a"),
    (None, "a", "b"),
    ({"category": 7}, "b", "b"),  # not a string: no category
    ({"category": "maths"}, None, "a"),  # no gold label: in no category's agreement
]
CATEGORY_SEED = 0


def write_pairs(tmp_path: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """The canonical file, and what the fake judge answers for each pair."""
    lines, answers = [], []
    for i, (metadata, label, answer) in enumerate(PAIRS):
        a, b = f"Answer A to question {i}.", f"A different answer B to question {i}, longer."
        pair: dict[str, Any] = {"prompt": f"Question {i}?", "response_a": a, "response_b": b}
        if metadata is not None:
            pair["metadata"] = metadata
        if label is not None:
            pair["label"] = label
        lines.append(json.dumps(pair))
        answers.append((a, b, answer))
    path = tmp_path / "categories.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, answers


def expected_agreement(category: Any) -> dict[str, Any]:
    """The same statistics the per-judge agreement uses, over this category's gold pairs."""
    rows = [
        (answer, label)
        for metadata, label, answer in PAIRS
        if label is not None and (metadata or {}).get("category") == category
    ]
    matrix = confusion([answer for answer, _ in rows], [label for _, label in rows])
    estimates = agreement(matrix, Bootstrap(seed=CATEGORY_SEED))
    return {name: estimate.as_dict() for name, estimate in estimates.items()}


class TestAgreementByCategory:
    def test_two_categories_by_hand(
        self, api: TestClient, provider: FakeProvider, database_url: str, tmp_path: Path
    ) -> None:
        """Per category: known agreement both ways and κ; CLI, batch block and HTTP agree."""
        path, answers = write_pairs(tmp_path)
        provider.configure(policy="gold", gold=gold_answers(answers), p_gold=1.0)
        env = provider_env(provider, database_url)
        labeled = referee("label", str(path), "--judge", GOLD, "--batch", "cats", env=env)
        assert labeled.returncode == 0, labeled.stderr
        result = referee("report", "--json", env=env)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        (block,) = report["judges"]
        rows = block["by_category"]
        assert [row["category"] for row in rows] == ["coding", "writing", None]
        assert [row["gold_pairs"] for row in rows] == [4, 4, 2]
        assert sum(row["gold_pairs"] for row in rows) == block["counts"]["with_gold"] == 10
        coding, writing, uncategorised = (row["agreement"] for row in rows)
        # coding: 3 of 4 right, none tied; judge a,b,a,a vs gold a,b,a,b: p_e = 1/2, κ = 1/2.
        assert coding["with_ties"]["value"] == coding["without_ties"]["value"] == 0.75
        assert coding["without_ties"]["n"] == 4
        assert coding["kappa"]["value"] == pytest.approx(0.5)
        # writing: 3 of 4; both pairs without a tie right; p_e = 5/16, κ = (3/4-5/16)/(11/16).
        assert writing["with_ties"]["value"] == 0.75
        assert writing["without_ties"] == {"value": 1.0, "ci": [1.0, 1.0], "n": 2}
        assert writing["kappa"]["value"] == pytest.approx(7 / 11)
        # No category (no metadata, or a number): a wrong "b" for "a", a right "b".
        assert uncategorised["with_ties"]["value"] == 0.5
        # Same statistics and seeded bootstrap as the judge's own agreement.
        assert coding == expected_agreement("coding")
        assert writing == expected_agreement("writing")
        # One batch holding every comparison: its block splits the same way.
        (batch,) = report["batches"]
        assert batch["by_category"] == rows

        summary = api.get("/v1/reports/summary")
        assert summary.status_code == 200, summary.text
        assert summary.json()["judges"][0]["by_category"] == rows
        over_batch = api.get(f"/v1/reports/batches/{batch['batch']['id']}").json()
        assert over_batch["batches"][0]["by_category"] == rows

        text = referee("report", env={**env, "COLUMNS": "200"})
        assert text.returncode == 0, text.stderr
        assert "Agreement with gold by category" in text.stdout
        for shown in ("coding", "writing", "(none)", "75.0% [", "0.636 ["):
            assert shown in text.stdout
        assert "maths" not in text.stdout

    def test_no_categories_no_rows(
        self, provider: FakeProvider, database_url: str, tmp_path: Path
    ) -> None:
        """Gold pairs none of which has a category: an empty list, and no text table."""
        path = tmp_path / "plain.jsonl"
        pair = {"prompt": "Q?", "response_a": "yes", "response_b": "no", "label": "a"}
        path.write_text(json.dumps(pair) + "\n", encoding="utf-8")
        provider.configure(policy="first")
        env = provider_env(provider, database_url)
        assert referee("label", str(path), "--judge", GOLD, env=env).returncode == 0
        report = json.loads(referee("report", "--json", env=env).stdout)
        assert report["judges"][0]["counts"]["with_gold"] == 1
        assert report["judges"][0]["by_category"] == []
        text = referee("report", env={**os.environ, **env, "COLUMNS": "200"}).stdout
        assert "by category" not in text


def test_text_table_shows_names_as_typed() -> None:
    """A category (or judge) that looks like rich markup shows literally in the terminal."""
    empty = {"value": None, "ci": None, "n": 0}
    row = {"with_ties": empty, "without_ties": empty, "kappa": empty}
    block = {
        "judge": "[red]j[/red]",
        "batch": None,
        "by_category": [{"category": "[b]maths[/b]", "gold_pairs": 0, "agreement": row}],
    }
    console = Console(width=200, record=True)
    console.print(category_table("by category", [block]))
    text = console.export_text()
    assert "[b]maths[/b]" in text
    assert "[red]j[/red]" in text
    pair = {"judge_a": "[red]j[/red]", "judge_b": "[i]k[/i]", "pairs": 0, "agreement": empty}
    bins = [{"lower": 0.5, "upper": 0.6, "count": 1, "mean_confidence": 0.55, "accuracy": 1.0}]
    console.print(agreement_table([{**pair, "kappa": empty}]))
    console.print(reliability_table([{**block, "calibration": {"bins": bins}}]))
    text = console.export_text()
    assert "[i]k[/i]" in text
    assert text.count("[red]j[/red]") == 2  # export_text cleared the first table
