"""The ``referee`` command line: a thin shell over app.labeling, one module per command group."""

from __future__ import annotations

import io
import sys

import typer

from app.cli import (
    constitutions,
    data,
    generate,
    inspect,
    keys,
    label,
    rate,
    report,
    review,
    revise,
    select,
    service,
    templates,
)
from app.cli.console import err, error_line
from app.cli.round import round_cli
from app.errors import RefereeError
from app.observability.logs import configure_logging
from app.observability.tracing import configure_tracing

cli = typer.Typer(
    name="referee",
    help="AI-feedback labeling: judge pairs, store verdicts with provenance, export datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cli.add_typer(service.db_cli, name="db")
cli.add_typer(keys.keys_cli, name="keys")
cli.add_typer(data.feedback_cli, name="feedback")
cli.add_typer(constitutions.constitutions_cli, name="constitutions")
cli.add_typer(templates.templates_cli, name="templates")
cli.command("export")(data.export)
cli.command("rate")(rate.rate)
cli.command("select")(select.select)
cli.command("revise")(revise.revise)
cli.add_typer(review.review_cli, name="review-queue")
cli.command("report")(report.report)
cli.command("inspect")(inspect.inspect)
cli.add_typer(report.gold_cli, name="gold")
cli.add_typer(round_cli, name="round")
cli.command("serve")(service.serve)
cli.command("label")(label.label)
cli.command("worker")(label.worker)
cli.command("generate")(generate.generate)


def main() -> None:
    # Data may hold what UTF-8 cannot encode (a lone surrogate from a JSON
    # "\\ud800"): shown escaped, it must never end a command in a traceback.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    # Log lines (not the tables and progress a command draws) on stderr: JSON off a terminal.
    configure_logging(sys.stderr, "stderr")
    # Traces where OTEL_* variables ask (worker, label, generate, round run, …); console
    # spans go beside the log lines, not into a command's output.
    try:
        configure_tracing(console=sys.stderr)
    except RefereeError as exc:  # an exporter or protocol Referee does not ship
        err.print(error_line(exc.message))
        sys.exit(2)
    cli()
