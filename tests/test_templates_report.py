"""Measuring templates: two templates on one gold set are two rows of the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fake_provider import FakeProvider

JUDGE = "anthropic:claude-sonnet-4-6"
GOLD = [
    {"prompt": f"q{i}", "response_a": "a long answer " * (i + 1), "response_b": "b", "label": "a"}
    for i in range(3)
]


def _referee(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_report_groups_agreement_by_template_ref(
    tmp_path: Path, database_url: str, provider: FakeProvider
) -> None:
    """--template A --template B on a gold file: one report row per template, each with gold."""
    provider.configure(policy="longer")
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(line) + "\n" for line in GOLD))
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url, "COLUMNS": "250"}
    assert _referee("db", "upgrade", env=env).returncode == 0
    templates = ["--template", "pairwise-v1", "--template", "pairwise-v2"]
    done = _referee("label", str(gold), "--judge", JUDGE, *templates, env=env)
    assert done.returncode == 0, done.stderr
    shown = _referee("report", "--json", "--resamples", "20", env=env)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    rows = {row["template"]: row for row in report["templates"]}
    assert len(rows) == 2
    assert "pairwise-v1" in rows
    assert next(ref for ref in rows if ref != "pairwise-v1").startswith("pairwise-v2@1:")
    for row in rows.values():
        assert row["judge"] == JUDGE
        assert row["counts"]["with_gold"] == 3
        assert row["agreement"]["with_ties"]["value"] == 1.0  # the longer answer is gold's
        assert row["cost"] is None
    assert len(report["judges"]) == 1  # one judge: the templates split it, not the judges
    text = _referee("report", "--resamples", "20", env=env)
    assert text.returncode == 0, text.stderr
    assert "Per template" in text.stdout
    assert "pairwise-v2@1:" in text.stdout
