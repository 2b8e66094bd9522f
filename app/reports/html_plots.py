"""Plotly figures for the HTML report: calibration, agreement by source or category, length bias.

Each figure becomes a ``<div>`` with a fixed id; plotly.js itself is inlined once
by the page (see :mod:`app.reports.html`), so the report works offline. Labels
that come from users (judge, batch and category names) are HTML-escaped first:
plotly reads a small set of tags (``<b>``, ``<a href>``) in its labels, and a
name must show as the text it is, never as markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

Report = dict[str, Any]
Block = dict[str, Any]

TEMPLATE = "plotly_white"
PALETTE: list[str] = list(qualitative.Plotly)
# Figure JSON inside a <script>: plotly escapes "<", ">" and "/" in it already.
CONFIG = {"displaylogo": False, "responsive": True}


def label(text: object) -> str:
    """A user-supplied name as plotly label text (escaped, shown literally)."""
    return html.escape(str(text), quote=False)


def _div(fig: go.Figure, div_id: str, height: int) -> str:
    fig.update_layout(template=TEMPLATE, height=height, margin={"t": 60, "b": 60})
    div: str = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=CONFIG,
        default_height=f"{height}px",
    )
    return div


def _error_bars(estimates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Asymmetric error bars from bootstrap intervals (none where there is no estimate)."""
    plus, minus = [], []
    for est in estimates:
        ci, value = est.get("ci"), est.get("value")
        plus.append(None if ci is None or value is None else ci[1] - value)
        minus.append(None if ci is None or value is None else value - ci[0])
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


def _estimate_bars(
    name: str, x: list[str], estimates: Sequence[dict[str, Any]], hover: str
) -> go.Bar:
    return go.Bar(
        name=name,
        x=x,
        y=[e.get("value") for e in estimates],
        error_y=_error_bars(estimates),
        customdata=[[e.get("n", 0)] for e in estimates],
        hovertemplate=f"%{{x}}<br>{hover}: %{{y:.1%}}<br>n=%{{customdata[0]}}<extra></extra>",
    )


def calibration(report: Report) -> str:
    """Reliability diagram per judge (accuracy against mean confidence) over bin counts."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="perfectly calibrated",
            line={"dash": "dash", "color": "#888"},
            hoverinfo="skip",
        ),
        row=1,
        col=1,
    )
    for i, block in enumerate(report["judges"]):
        _calibration_traces(fig, block, PALETTE[i % len(PALETTE)])
    fig.update_xaxes(title_text="confidence", range=[-0.02, 1.02], row=2, col=1)
    fig.update_yaxes(title_text="accuracy against gold", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="verdicts", row=2, col=1)
    fig.update_layout(title="Calibration: verdict confidence against agreement with gold")
    fig.update_layout(barmode="group")
    return _div(fig, "plot-calibration", 560)


def _calibration_traces(fig: go.Figure, block: Block, color: str) -> None:
    cal = block["calibration"]
    ece = cal.get("ece")
    ece_text = "—" if ece is None else f"{ece:.3f}"
    name = f"{label(block['judge'])} (ECE {ece_text}, n={cal['n']})"
    filled = [b for b in cal["bins"] if b["count"] > 0 and b["mean_confidence"] is not None]
    group = f"cal-{block['judge']}"
    fig.add_trace(
        go.Scatter(
            x=[b["mean_confidence"] for b in filled],
            y=[b["accuracy"] for b in filled],
            customdata=[[b["count"], b["lower"], b["upper"]] for b in filled],
            mode="lines+markers",
            marker={"color": color},
            line={"color": color},
            name=name,
            legendgroup=group,
            hovertemplate="confidence %{x:.3f} → accuracy %{y:.3f}<br>"
            "bin [%{customdata[1]:.2f}, %{customdata[2]:.2f}], %{customdata[0]} verdicts"
            "<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=[(b["lower"] + b["upper"]) / 2 for b in cal["bins"]],
            y=[b["count"] for b in cal["bins"]],
            width=[(b["upper"] - b["lower"]) * 0.9 for b in cal["bins"]],
            name=name,
            legendgroup=group,
            showlegend=False,
            marker={"color": color},
            opacity=0.6,
            hovertemplate="bin around %{x:.2f}: %{y} verdicts<extra></extra>",
        ),
        row=2,
        col=1,
    )


def agreement_by_source(report: Report) -> str:
    """Agreement with gold (ties counted) per batch, one bar per judge; per judge without batches.

    A batch is one input file labeled by one judge, so it stands for the data's source.
    """
    blocks = report["batches"] or report["judges"]
    fig = go.Figure()
    for judge in sorted({b["judge"] for b in blocks}):
        mine = [b for b in blocks if b["judge"] == judge]
        x = [label(b["batch"]["name"]) if b["batch"] else label(judge) for b in mine]
        estimates = [b["agreement"]["with_ties"] for b in mine]
        fig.add_trace(_estimate_bars(label(judge), x, estimates, "agreement"))
    title = "Agreement with gold by source (batch)" if report["batches"] else "Agreement by judge"
    fig.update_layout(title=f"{title}, ties counted, with bootstrap CIs", barmode="group")
    fig.update_yaxes(title_text="agreement with gold", range=[0, 1.05], tickformat=".0%")
    return _div(fig, "plot-agreement-source", 460)


def agreement_by_category(report: Report) -> str | None:
    """Agreement with gold per category (``metadata.category``), when the report has it."""
    if not any(block.get("by_category") for block in report["judges"]):
        return None
    fig = go.Figure()
    for block in report["judges"]:
        rows = block.get("by_category") or []
        x = [label(row["category"] if row["category"] is not None else "(none)") for row in rows]
        estimates = [row["agreement"]["with_ties"] for row in rows]
        fig.add_trace(_estimate_bars(label(block["judge"]), x, estimates, "agreement"))
    fig.update_layout(
        title="Agreement with gold by category, ties counted, with bootstrap CIs", barmode="group"
    )
    fig.update_yaxes(title_text="agreement with gold", range=[0, 1.05], tickformat=".0%")
    return _div(fig, "plot-agreement-category", 460)


def length_bias(report: Report) -> str:
    """Share of decided pairs where the longer response won: each judge against gold."""
    judges = report["judges"]
    x = [label(block["judge"]) for block in judges]
    fig = go.Figure()
    for key, name in (("judge_prefers_longer", "judge"), ("gold_prefers_longer", "gold labels")):
        estimates = [block["length"][key] for block in judges]
        fig.add_trace(_estimate_bars(name, x, estimates, "longer one preferred"))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="no length preference")
    fig.update_layout(
        title="Length bias: how often the longer response wins (judge ≫ gold = bias)",
        barmode="group",
    )
    fig.update_yaxes(title_text="longer response preferred", range=[0, 1.05], tickformat=".0%")
    return _div(fig, "plot-length-bias", 460)


def figures(report: Report) -> list[str]:
    """Every figure of the page, in order; the category figure only when there are categories."""
    divs = [
        calibration(report),
        agreement_by_source(report),
        agreement_by_category(report),
        length_bias(report),
    ]
    return [div for div in divs if div is not None]


def run_steps(report: Report) -> str:
    """An online run's per-step score: mean, and the p10-p90 band (``referee report --run``)."""
    steps = [s for s in report["steps"] if s["step"] is not None and s["quantiles"]]
    x = [s["step"] for s in steps]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=[s["quantiles"]["p90"] for s in steps], name="p90", mode="lines")
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[s["quantiles"]["p10"] for s in steps],
            name="p10",
            mode="lines",
            fill="tonexty",
        )
    )
    fig.add_trace(go.Scatter(x=x, y=[s["mean"] for s in steps], name="mean", mode="lines+markers"))
    fig.update_layout(
        title=f"Score per step: {label(report['run'])}",
        xaxis_title="step",
        yaxis_title="score",
        yaxis_range=[0, 1],
    )
    return _div(fig, "run-steps", 420)
