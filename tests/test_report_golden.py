"""The report of a fixed, awkward database equals the one captured before it was computed in SQL.

tests/data/report/golden.json holds the reports (whole, by judge, by batch,
with 10 and 100 calibration bins) that the in-memory implementation gave on
tests/report_seed.py's rows. Computing them with GROUP BY queries must change
nothing: counts, orders and names exactly, floats to the last few bits
(a database sums in another order than numpy).
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

from app.reports.build import ReportOptions, build_report
from app.reports.metrics import Bootstrap
from app.store.db import Database, sync_url
from tests.report_seed import seed

GOLDEN = Path(__file__).parent / "data" / "report" / "golden.json"

CASES: dict[str, dict[str, Any]] = {
    "all": {},
    "all_100_bins": {"calibration_bins": 100},
    "judge": {"judge": "openai:gpt-4o-mini"},
    "batch": {"batch": "alpha"},
    "judge_and_batch": {"judge": "anthropic:claude-sonnet-4-6", "batch": "beta"},
}


def reports(database_url: str) -> dict[str, Any]:
    """Every case's report (without its time of generation) on a seeded database."""

    async def build() -> dict[str, Any]:
        database = Database(database_url)
        try:
            found = {}
            for name, options in CASES.items():
                report = await build_report(
                    database, ReportOptions(bootstrap=Bootstrap(resamples=200), **options)
                )
                report.pop("generated_at")
                found[name] = report
            return found
        finally:
            await database.dispose()

    return asyncio.run(build())


def assert_same(found: Any, expected: Any, where: str = "") -> None:
    if isinstance(expected, float) and isinstance(found, float):
        assert math.isclose(found, expected, rel_tol=1e-12, abs_tol=1e-15), where
    elif isinstance(expected, dict):
        assert isinstance(found, dict), where
        assert list(found) == list(expected), where
        for key, value in expected.items():
            assert_same(found[key], value, f"{where}/{key}")
    elif isinstance(expected, list):
        assert isinstance(found, list), where
        assert len(found) == len(expected), where
        for index, (one, other) in enumerate(zip(found, expected, strict=True)):
            assert_same(one, other, f"{where}/{index}")
    else:
        assert found == expected, where


def test_report_equals_the_captured_one(database_url: str) -> None:
    seed(sync_url(database_url))
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    found = json.loads(json.dumps(reports(database_url)))
    # The seed covers what it claims: several judges agreeing, categories, gold of both kinds.
    whole = expected["all"]
    assert len(whole["judges"]) == 3
    assert len(whole["judge_agreement"]) == 3
    assert whole["gold"]["sources"]["review"] > 0
    assert whole["gold"]["sources"]["import"] > 0
    assert any(block["by_category"] for block in whole["judges"])
    assert any(block["position"]["favoured_first"]["n"] for block in whole["judges"])
    assert_same(found, expected)
