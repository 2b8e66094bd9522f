"""The HTML report, opened in a real headless Chromium: it renders offline, its plots are
drawn, and every number it shows is the one `referee report --json` gives.

The browser is the system's Chromium (Debian's `chromium` package), driven by
Playwright's Python package; no browser is downloaded. Without /usr/bin/chromium
(or REFEREE_TEST_CHROMIUM) the browser tests skip and say so.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from app.errors import InvalidInputError
from app.reports.html import render_report
from tests.fake_provider import FakeProvider

CHROMIUM = Path(os.environ.get("REFEREE_TEST_CHROMIUM", "/usr/bin/chromium"))
PLOTS = ("plot-calibration", "plot-agreement-source", "plot-length-bias")
SONNET = "anthropic:claude-sonnet-4-6"
MINI = "openai:gpt-4o-mini"
# A batch name a user typed: it must show as text and never run.
EVIL_BATCH = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>&amp; set'
CATEGORIES = ("coding", "writing", "math")
FAST = ("--resamples", "200")


def shown(value: float | int | None, kind: str) -> str:
    """How the page must show a JSON number of each format."""
    if value is None:
        return "—"
    formats = {
        "pct": f"{value * 100:.1f}%",
        "num": f"{value:.3f}",
        "usd": f"${value:,.4f}",
        "int": f"{value:,}",
    }
    return formats[kind]


def resolve(report: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901, without escapes: our keys have no '/')."""
    for key in pointer.lstrip("/").split("/"):
        report = report[int(key)] if isinstance(report, list) else report[key]
    return report


@dataclass
class Rendered:
    """What the browser saw: errors, requests, numbers and figures."""

    errors: list[str]
    requests: list[str]
    numbers: list[dict[str, str]]
    plots: dict[str, dict[str, float]]
    injected: Any
    text: str
    plot_text: dict[str, str]


PAGE_NUMBERS = """els => els.map(e => ({
    metric: e.dataset.metric, value: e.dataset.value, format: e.dataset.format,
    text: e.textContent.trim()}))"""
# Size of each figure's SVG, and how many marks (bars, lines, points) it drew.
PAGE_PLOTS = """ids => Object.fromEntries(ids.map(id => {
    const root = document.getElementById(id);
    const svg = root && root.querySelector('svg.main-svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = root ? [...root.querySelectorAll('.plot path')].filter(p => {
        const b = p.getBoundingClientRect();
        return (p.getAttribute('d') || '').length > 2 && (b.width > 0 || b.height > 0);
    }).length : 0;
    return [id, {width: box.width, height: box.height, marks: marks}];
}))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def open_report(browser: Browser, path: Path, plots: tuple[str, ...]) -> Rendered:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri(), wait_until="load")
    # plotly draws asynchronously after newPlot; wait for every figure's SVG.
    page.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= n",
        arg=len(plots),
    )
    rendered = Rendered(
        errors=errors,
        requests=requests,
        numbers=page.eval_on_selector_all("[data-metric]", PAGE_NUMBERS),
        plots=page.evaluate(PAGE_PLOTS, list(plots)),
        injected=page.evaluate("window.__xss"),
        text=page.inner_text("body"),
        plot_text={
            plot_id: page.eval_on_selector(f"#{plot_id}", "plot => plot.textContent")
            for plot_id in plots
        },
    )
    page.close()
    return rendered


def assert_numbers_match(rendered: Rendered, report: dict[str, Any]) -> set[str]:
    """Every number on the page is the JSON's, shown in its format; returns the pointers."""
    assert rendered.numbers, "the page shows no numbers"
    for number in rendered.numbers:
        expected = resolve(report, number["metric"])
        assert json.loads(number["value"]) == expected, number
        assert number["text"] == shown(expected, number["format"]), number
    return {number["metric"] for number in rendered.numbers}


def assert_renders_offline(rendered: Rendered) -> None:
    assert rendered.errors == []
    assert all(url.startswith("file:") for url in rendered.requests), rendered.requests
    assert rendered.injected is None
    for plot_id, plot in rendered.plots.items():
        assert plot["width"] > 100, (plot_id, plot)
        assert plot["height"] > 100, (plot_id, plot)
        assert plot["marks"] > 0, (plot_id, plot)


def pair_lines(count: int) -> list[str]:
    """Pairs with one long and one short answer (alternating sides) and a human's label.

    The human prefers the longer answer two times in three, the shorter one
    otherwise, and calls every fourth pair a tie.
    """
    lines = []
    for i in range(count):
        long, short = f"A detailed answer number {i}, with reasons and an example.", f"No. {i}"
        a, b = (long, short) if i % 2 == 0 else (short, long)
        longer = "a" if i % 2 == 0 else "b"
        shorter = "b" if longer == "a" else "a"
        label = "tie" if i % 4 == 3 else (longer if i % 3 else shorter)
        pair = {
            "id": f"p{i}",
            "prompt": f"Question {i}?",
            "response_a": a,
            "response_b": b,
            "metadata": {"category": CATEGORIES[i % 3]},
            "label": label,
        }
        lines.append(json.dumps(pair))
    return lines


def referee(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


@pytest.fixture
def labeled(tmp_path: Path, database_url: str, provider: FakeProvider) -> dict[str, str]:
    """Two judges over a human-labeled file, through `referee label` and the real SDKs.

    Sonnet prefers the longer answer in both orders; the mini model always picks
    the first-shown answer, so every one of its verdicts is a position-biased tie.
    """
    env = {**os.environ, "REFEREE_DATABASE_URL": database_url}
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(pair_lines(24)) + "\n", encoding="utf-8")
    provider.configure(policy="longer")
    first = referee("label", str(source), "--judge", SONNET, "--batch", EVIL_BATCH, env=env)
    assert first.returncode == 0, first.stderr
    provider.configure(policy="first")
    second = referee("label", str(source), "--judge", MINI, env=env)
    assert second.returncode == 0, second.stderr
    return env


class TestReportInBrowser:
    def test_page_renders_offline_and_shows_the_json_numbers(
        self, tmp_path: Path, labeled: dict[str, str], browser: Browser
    ) -> None:
        """`referee report --html` and `--json` agree number for number, in Chromium."""
        # Two runs, as a user makes them: the seeded bootstrap gives both the same numbers.
        result = referee("report", "--json", *FAST, env=labeled)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        out = tmp_path / "report.html"
        result = referee("report", "--html", str(out), *FAST, env=labeled)
        assert result.returncode == 0, result.stderr

        # The pairs carry metadata.category: the page must show agreement by category.
        assert all(block["by_category"] for block in report["judges"])
        rendered = open_report(browser, out, (*PLOTS, "plot-agreement-category"))
        assert_renders_offline(rendered)
        pointers = assert_numbers_match(rendered, report)
        for i, block in enumerate(report["judges"]):
            for metric in ("with_ties", "without_ties", "kappa"):
                estimate = block["agreement"][metric]
                assert f"/judges/{i}/agreement/{metric}/value" in pointers
                assert f"/judges/{i}/agreement/{metric}/n" in pointers
                if estimate["ci"] is not None:
                    assert f"/judges/{i}/agreement/{metric}/ci/1" in pointers
            for pointer in (
                "position/consistency/value",
                "position/favoured_first/value",
                "length/judge_prefers_longer/value",
                "length/gold_prefers_longer/value",
                "tie_rate/value",
                "failure_rate/value",
                "calibration/ece",
                "cost/per_1000_labels_usd",
            ):
                assert f"/judges/{i}/{pointer}" in pointers
        assert len(report["judge_agreement"]) == 1
        assert "/judge_agreement/0/kappa/value" in pointers
        assert len(report["batches"]) == 2
        assert {f"/batches/{i}/agreement/with_ties/value" for i in range(2)} <= pointers
        # The two judges differ the way they were scripted, and the page says so.
        by_judge = {block["judge"]: block for block in report["judges"]}
        assert by_judge[SONNET]["length"]["judge_prefers_longer"]["value"] == 1.0
        assert by_judge[MINI]["winners"]["tie"] == 24
        assert EVIL_BATCH in rendered.text


def sample_report() -> dict[str, Any]:
    """A schema-shaped report whose judge, batch and category names are markup."""

    def estimate(value: float | None, n: int) -> dict[str, Any]:
        if value is None:
            return {"value": None, "ci": None, "n": 0}
        return {"value": value, "ci": [max(value - 0.1, 0.0), min(value + 0.1, 1.0)], "n": n}

    bins = [
        {
            "lower": i / 10,
            "upper": (i + 1) / 10,
            "count": 0,
            "mean_confidence": None,
            "accuracy": None,
        }
        for i in range(10)
    ]
    bins[5].update(count=4, mean_confidence=0.5, accuracy=0.25)
    bins[9].update(count=16, mean_confidence=1.0, accuracy=0.8125)
    judge = '<b onmouseover="window.__xss=3">judge</b>'
    block = {
        "judge": judge,
        "batch": None,
        "counts": {"comparisons": 21, "labeled": 20, "failed": 1, "pending": 0, "with_gold": 20},
        "winners": {"a": 9, "b": 7, "tie": 4},
        "tie_rate": estimate(0.2, 20),
        "failure_rate": estimate(1 / 21, 21),
        "agreement": {
            "with_ties": estimate(0.75, 20),
            "without_ties": estimate(0.8125, 16),
            "kappa": estimate(0.6123, 20),
        },
        "position": {
            "consistency": estimate(0.8, 20),
            "inconsistent": 4,
            "favoured_first": estimate(None, 0),
        },
        "length": {
            "judge_prefers_longer": estimate(0.9, 16),
            "gold_prefers_longer": estimate(0.6, 15),
        },
        "calibration": {"ece": 0.1437, "n": 20, "bins": bins},
        "cost": {
            "usd": 1234.5,
            "calls": 42,
            "unpriced_calls": 0,
            "labels": 20,
            "per_1000_labels_usd": 61725.0,
        },
        "by_category": [
            {
                "category": "<i>maths</i>",
                "gold_pairs": 20,
                "agreement": {
                    "with_ties": estimate(0.75, 20),
                    "without_ties": estimate(0.8, 16),
                    "kappa": estimate(0.6, 20),
                },
            },
        ],
    }
    batch = {**copy.deepcopy(block), "batch": {"id": "b1", "name": EVIL_BATCH}}
    return {
        "schema_version": 1,
        "generated_at": "2026-11-27T17:02:11.532000+00:00",
        "scope": {"judge": None, "batch": None},
        "settings": {"resamples": 200, "confidence_level": 0.95, "seed": 0, "calibration_bins": 10},
        "gold": {
            "pairs": 20,
            "winners": {"a": 9, "b": 7, "tie": 4},
            "sources": {"import": 20, "review": 0},
        },
        "judges": [block],
        "batches": [batch],
        "judge_agreement": [],
    }


class TestRenderReport:
    def test_names_are_text_not_markup(self, tmp_path: Path, browser: Browser) -> None:
        """Judge, batch and category names show literally in tables and plots, and never run."""
        report = sample_report()
        out = tmp_path / "report.html"
        out.write_text(render_report(report), encoding="utf-8")
        rendered = open_report(browser, out, (*PLOTS, "plot-agreement-category"))
        assert_renders_offline(rendered)
        assert_numbers_match(rendered, report)
        judge = report["judges"][0]["judge"]
        assert judge in rendered.text
        assert EVIL_BATCH in rendered.text
        assert "<i>maths</i>" in rendered.text
        assert judge in rendered.plot_text["plot-calibration"]
        assert EVIL_BATCH in rendered.plot_text["plot-agreement-source"]
        assert "<i>maths</i>" in rendered.plot_text["plot-agreement-category"]
        assert "$61,725.0000" in rendered.text

    def test_page_is_self_contained(self) -> None:
        """No external scripts, styles or links: plotly.js is inlined."""
        page = render_report(sample_report())
        assert "<script src" not in page
        assert "<link" not in page
        assert "cdn.plot.ly" not in page.split("</head>", 1)[1]

    def test_missing_field_is_named(self) -> None:
        """A report without a field names it as a JSON pointer."""
        report = sample_report()
        del report["judges"][0]["agreement"]["kappa"]
        with pytest.raises(InvalidInputError, match=r"/judges/0/agreement/kappa"):
            render_report(report)

    def test_a_missing_section_is_named(self) -> None:
        """A report without a whole section (here the judges) names it too."""
        report = sample_report()
        del report["judges"]
        with pytest.raises(InvalidInputError, match=r"/judges"):
            render_report(report)

    def test_unknown_schema_version_is_refused(self) -> None:
        report = sample_report()
        report["schema_version"] = 2
        with pytest.raises(InvalidInputError, match="schema_version 2 is not supported"):
            render_report(report)

    def test_an_empty_report_renders(self) -> None:
        """No judges yet: the page still renders, with empty tables said to be empty."""
        report = sample_report()
        report.update(judges=[], batches=[], judge_agreement=[])
        page = render_report(report)
        assert "Nothing to show." in page
