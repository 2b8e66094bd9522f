"""The judge-quality report as one self-contained HTML page.

:func:`render_report` takes the report dict that ``referee report --json``
prints and returns a page with its tables (:mod:`app.reports.html_tables`) and
plotly figures (:mod:`app.reports.html_plots`); plotly.js is inlined, so the
page needs no network. Every number shown carries ``data-metric`` (a JSON
pointer into the report), ``data-value`` (the exact JSON value) and
``data-format`` (how its text was formatted), so a reader or a test can check
the page against the JSON. Names from users (judges, batches, categories) are
escaped by the template's autoescaping.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Both come with the `report` extra; without it, importing this module fails
# and `referee report --html` says which extra to install.
import jinja2
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from app.errors import InvalidInputError
from app.reports import html_plots, review_tables
from app.reports.html_tables import lookup, number, tables

SCHEMA_VERSION = 1
TEMPLATE = "report.html.j2"
RUN_TEMPLATE = "reward_run.html.j2"


def render_report(report: dict[str, Any]) -> str:
    """One self-contained HTML page (tables and plots) for a report dict of schema version 1.

    Raises InvalidInputError naming the missing or malformed field (as a JSON
    pointer).
    """
    version = report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidInputError(
            f"report schema_version {version!r} is not supported (expected {SCHEMA_VERSION})",
            field="/schema_version",
        )
    # Header and tables first: they check each field they read and name it.
    header, table_rows = _header(report), tables(report) + review_tables.html_tables(report)
    # The only markup left unescaped is plotly's own: plotly.js, and figures whose
    # JSON escapes "<" and whose user-supplied labels html_plots escaped first.
    plots = [Markup(figure) for figure in html_plots.figures(report)]  # noqa: S704
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            header=header,
            tables=table_rows,
            plots=plots,
            plotly_js=Markup(get_plotlyjs()),  # noqa: S704
        )
    )


def render_run(report: dict[str, Any]) -> str:
    """The page of ``referee report --run`` (app.reports.reward_run): tables and a plot."""
    version = report.get("schema_version")
    if version != SCHEMA_VERSION or not isinstance(report.get("steps"), list):
        raise InvalidInputError("not a run report of schema_version 1", field="/schema_version")
    return (
        _environment()
        .get_template(RUN_TEMPLATE)
        .render(
            report=report,
            plot=Markup(html_plots.run_steps(report)),  # noqa: S704
            plotly_js=Markup(get_plotlyjs()),  # noqa: S704
        )
    )


def _whole_run(summary: dict[str, Any]) -> dict[str, Any]:
    return {**summary, "step": "all"}


def _header(report: dict[str, Any]) -> dict[str, Any]:
    gold = lookup(report, ("gold",), "/gold")
    judges = lookup(report, ("judges",), "/judges")
    batches = lookup(report, ("batches",), "/batches")
    return {
        "generated_at": str(report.get("generated_at", "")),
        "database": report.get("database"),
        "scope": report.get("scope") or {},
        "intervals": _intervals(report.get("settings") or {}),
        "judges": [str(block.get("judge")) for block in judges],
        "batches": sorted({str((block.get("batch") or {}).get("name")) for block in batches}),
        "gold": [
            number(gold, "/gold", path, "int")
            for path in (("pairs",), ("winners", "a"), ("winners", "b"), ("winners", "tie"))
        ],
        "gold_sources": {
            str(name): number(gold, "/gold", ("sources", str(name)), "int")
            for name in (gold.get("sources") or {})
        },
    }


def _intervals(settings: dict[str, Any]) -> str:
    level = settings.get("confidence_level")
    level_text = f"{level:.0%}" if isinstance(level, int | float) else "?"
    return (
        f"{level_text} percentile bootstrap, {settings.get('resamples', '?')} resamples, "
        f"seed {settings.get('seed', '?')}; {settings.get('calibration_bins', '?')} "
        "calibration bins"
    )


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("app.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["combine_step"] = _whole_run
    return environment
