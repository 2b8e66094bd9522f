"""The ``referee`` command line: a thin shell over app.labeling, one module per command group."""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import Mapping
from typing import ClassVar

import typer

from app.cli.console import err, error_line
from app.cli.lazy import LazyGroup, Where
from app.errors import RefereeError
from app.observability.logs import configure_logging
from app.observability.tracing import configure_tracing


class Commands(LazyGroup):
    """Every command: its module is imported when it runs (``referee label`` loads label's)."""

    commands_at: ClassVar[Mapping[str, Where]] = {
        "export": ("data", "export"),
        "rate": ("rate", "rate"),
        "select": ("select", "select"),
        "revise": ("revise", "revise"),
        "report": ("report", "report"),
        "inspect": ("inspect", "inspect"),
        "serve": ("service", "serve"),
        "label": ("label", "label"),
        "worker": ("label", "worker"),
        "generate": ("generate", "generate"),
        "db": ("service", "db_cli"),
        "keys": ("keys", "keys_cli"),
        "feedback": ("data", "feedback_cli"),
        "constitutions": ("constitutions", "constitutions_cli"),
        "templates": ("templates", "templates_cli"),
        "review-queue": ("review", "review_cli"),
        "gold": ("report", "gold_cli"),
        "round": ("round", "round_cli"),
    }


cli = typer.Typer(
    name="referee",
    cls=Commands,
    help="AI-feedback labeling: judge pairs, store verdicts with provenance, export datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


PAUSED_THROUGH_STARTUP = frozenset({"label"})
"""Commands that resume the cyclic collector themselves, once their start-up is over."""


@cli.callback()
def _referee(ctx: typer.Context) -> None:
    # No options of its own: the callback makes typer build a group whose
    # commands (all of them lazy, none registered here) it does not know yet.
    if ctx.invoked_subcommand not in PAUSED_THROUGH_STARTUP:
        gc.enable()  # main() paused it for parsing; this command's work starts now


def pause_collector() -> None:
    """Pause the cyclic garbage collector for the start-up of a command.

    Start-up allocates some 400,000 objects that live as long as the
    process (modules, classes, a provider SDK's pydantic models) and frees
    almost none: each collection scans them all again, a fifth of the CPU
    the imports take. The root callback resumes it for every command but
    those in :data:`PAUSED_THROUGH_STARTUP`, which resume it when their
    work starts (``referee label``: when judging starts, see
    app.cli.label.progress_view).
    """
    gc.disable()


def main() -> None:
    pause_collector()
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
