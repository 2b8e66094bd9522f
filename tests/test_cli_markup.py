"""Text from messages, files and data reaches the terminal as typed, never parsed as rich markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.cli.console import RejectPrinter, fail, out, progress_spinner, report_run
from app.labeling.item_runs import RunSummary
from app.labeling.jsonl import LineError
from app.reports.text import agreement_table, category_table, metrics_table

# Each would lose characters if parsed: tags vanish, "[/]" is an error, ":x:" an emoji.
VALUES = [
    "pip install 'referee[local]'",
    "[red]x[/red]",
    "[/]",
    "[bold",
    "[bold]",
    "[link=https://example.com]y[/link]",
    ":thumbs_up: :x:",
    "\\[escaped]",
]
NO_SLASH = [v for v in VALUES if "/" not in v]


@pytest.mark.parametrize("value", VALUES)
def test_fail_prints_the_message_whole(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """fail() styles only its prefix: the message comes back exactly."""
    with pytest.raises(typer.Exit):
        fail(value)
    assert capsys.readouterr().err == f"error: {value}\n"


@pytest.mark.parametrize("value", VALUES)
def test_a_command_error_names_the_value_whole(value: str) -> None:
    """A real command's error quoting user input shows the input as typed."""
    result = CliRunner().invoke(cli, ["constitutions", "show", value])
    assert result.exit_code == 2
    assert f"no constitution {value!r}" in result.output


@pytest.mark.parametrize("value", VALUES)
def test_a_usage_error_names_the_value_whole(value: str) -> None:
    """Typer's own errors (an unknown command) show the typed name as it is."""
    result = CliRunner().invoke(cli, [f"nosuch{value}"])
    assert result.exit_code == 2
    assert f"No such command {f'nosuch{value}'!r}" in result.output


@pytest.mark.parametrize("value", VALUES)
def test_rejected_lines_and_summary_are_whole(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reject lines carry file names and reasons; the summary carries caller text."""
    rejected = [LineError(source=value, line=3, reason=f"field 'x': {value}", text="")]
    with pytest.raises(typer.Exit):
        report_run(RunSummary(new=1, rejected=rejected), "rated", f"rubric {value}")
    captured = capsys.readouterr()
    assert f"{value}:3: field 'x': {value}\n" in captured.err
    assert f"rubric {value};" in captured.out


@pytest.mark.parametrize("value", VALUES)
def test_reject_printer_overflow_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Past the limit, the count line names the source file as typed."""
    printer = RejectPrinter(limit=1, where=value)
    printer(LineError(source=value, line=1, reason=value, text=""))
    printer(LineError(source=value, line=2, reason=value, text=""))
    printer.finish()
    err = capsys.readouterr().err
    assert f"{value}:1: {value}\n" in err
    assert f"(every one in {value})" in err


@pytest.mark.parametrize("value", VALUES)
def test_spinner_description_is_whole(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A progress description is shown as plain text."""
    with progress_spinner(value) as show:
        show(RunSummary(new=2))
    assert f"{value} 2 (0 failed)" in capsys.readouterr().err


def _estimate() -> dict[str, Any]:
    return {"value": None, "ci": None, "n": 0}


def _block(name: str) -> dict[str, Any]:
    empty = _estimate()
    return {
        "judge": name,
        "batch": {"name": name},
        "counts": {"comparisons": 1, "labeled": 1, "failed": 0, "pending": 0, "with_gold": 0},
        "winners": {"a": 1, "b": 0, "tie": 0},
        "agreement": {"with_ties": empty, "without_ties": empty, "kappa": empty},
        "position": {"consistency": empty, "favoured_first": empty},
        "length": {"judge_prefers_longer": empty, "gold_prefers_longer": empty},
        "tie_rate": empty,
        "failure_rate": empty,
        "calibration": {"ece": None, "n": 0, "bins": []},
        "cost": {"usd": 0.0, "calls": 0, "unpriced_calls": 0, "per_1000_labels_usd": None},
        "by_category": [
            {
                "category": name,
                "gold_pairs": 0,
                "agreement": {"with_ties": empty, "without_ties": empty, "kappa": empty},
            }
        ],
    }


@pytest.mark.parametrize("value", VALUES)
def test_report_tables_show_names_whole(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Judge, batch and category names from the data are table cells as typed."""
    pair = {"judge_a": value, "judge_b": value, "pairs": 0, "agreement": _estimate()}
    out.width = 400
    for table in (
        metrics_table("Per batch", [_block(value)]),
        category_table("by category", [_block(value)]),
        agreement_table([{**pair, "kappa": _estimate()}]),
    ):
        out.print(table)
        assert value in capsys.readouterr().out


@pytest.mark.parametrize("value", NO_SLASH)
def test_constitution_listing_and_problems_are_whole(value: str, tmp_path: Path) -> None:
    """A description from a file, and a broken file's name, are printed as they are."""
    constitution = {
        "id": "ok",
        "version": "1",
        "description": value,
        "principles": [
            {
                "id": "p",
                "critique_request": "c",
                "revision_request": "r",
                "preference_question": "q",
            }
        ],
    }
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(constitution), encoding="utf-8")
    (tmp_path / f"{value}.yaml").write_text("id: [broken\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["constitutions", "list", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert value in result.output.split("error:")[0]
    assert f"{value}.yaml" in result.output


def test_a_lone_surrogate_in_data_prints_escaped_not_as_a_traceback(tmp_path: Path) -> None:
    """Output that UTF-8 cannot encode is escaped by the real entry point, never a crash."""
    import subprocess
    import sys

    source = tmp_path / "odd.jsonl"
    source.write_text('{"q": "\\ud800", "x": 1}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "inspect", str(source)],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert 'e.g. "\\ud800"' in stdout, stdout
