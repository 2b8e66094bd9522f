"""Console helpers shared by the CLI's command modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from app.errors import RefereeError
from app.settings import Settings

if TYPE_CHECKING:
    from app.labeling.item_runs import RunSummary

T = TypeVar("T")

# What these consoles print is mostly data: file names, ids, judge specs,
# error messages quoting user input, hints like "pip install 'referee[local]'".
# Markup and emoji codes are off, so "[local]" or ":x:" shows as typed; the
# few styled words are rich Text built in code (see ``error_line``).
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)


def error_line(message: str) -> Text:
    """``error: message`` with the prefix in red and the message as plain text."""
    return Text.assemble(("error:", "red"), " ", message)


def fail(message: str, code: int = 2) -> NoReturn:
    """A user error: one clean line on stderr, no traceback."""
    err.print(error_line(message))
    raise typer.Exit(code)


def run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run long labeling work on uvloop where it exists.

    Thousands of HTTP calls in flight make the event loop itself the hot
    path; uvloop cuts the per-callback cost that otherwise shows up as
    added latency on every model call.
    """
    try:
        import uvloop
    except ImportError:  # Windows: no uvloop, the standard loop works
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(f"bad REFEREE_* setting: {exc}")


JudgeOption = Annotated[
    str | None,
    typer.Option(
        "--judge", "-j", envvar="REFEREE_DEFAULT_JUDGE", help="provider:model or a named judge."
    ),
]
"""``--judge`` of the commands that judge a file (label, rate)."""

EmptyOption = Annotated[
    str | None,
    typer.Option(
        help="An empty or whitespace-only prompt or response: reject or judge "
        "(default: REFEREE_EMPTY_TEXTS, else reject)."
    ),
]
"""``--empty`` of every command that pays for a judge call (label, rate, revise)."""


def settings_with_empty(empty: str | None) -> Settings:
    """The settings, with ``--empty`` (reject|judge) over ``REFEREE_EMPTY_TEXTS`` when given."""
    settings = load_settings()
    if empty is None:
        return settings
    if empty not in ("reject", "judge"):
        fail(f"--empty: {empty!r} is not one of reject, judge")
    return settings.model_copy(update={"empty_texts": empty})


def run_or_fail(coroutine: Coroutine[Any, Any, T], file: str) -> T:
    """Run a command's work; a user error or an unreadable file is one clean line."""
    try:
        return run_fast(coroutine)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except RefereeError as exc:
        fail(exc.message)


@contextmanager
def progress_spinner(verb: str) -> Iterator[Callable[[RunSummary], None]]:
    """A spinner with counts and elapsed time, for work whose total is not known up front."""
    # The description carries counts only, but it is a format string: plain text anyway.
    columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task(verb)

        def show(summary: RunSummary) -> None:
            bar.update(task, description=f"{verb} {summary.done} ({summary.failed} failed)")

        yield show


MAX_PRINTED_REJECTS = 20


class RejectPrinter:
    """Prints the first rejected lines on stderr, one each, then only how many more there were.

    A file in the wrong shape gets every line rejected: a million identical
    errors would bury the one line that says what to do.
    """

    def __init__(self, limit: int = MAX_PRINTED_REJECTS, where: str | None = None) -> None:
        self.limit, self.where, self.count = limit, where, 0

    def __call__(self, error: object) -> None:
        self.count += 1
        if self.count <= self.limit:
            err.print(str(error), markup=False)

    def finish(self) -> None:
        hidden = self.count - self.limit
        if hidden > 0:
            every = f" (every one in {self.where})" if self.where else ""
            err.print(f"… and {hidden:,} more rejected lines{every}", markup=False)


def report_run(summary: RunSummary, verb: str, extra: str) -> None:
    """Print bad lines and one summary line; exit 1 when anything failed or was rejected."""
    printer = RejectPrinter()
    for line_error in summary.rejected:
        printer(line_error)
    printer.finish()
    failures = summary.describe_failures()
    merged = f", {summary.merged} duplicate lines merged" if summary.merged else ""
    out.print(
        f"{summary.new} {verb}, {summary.reused} already {verb}, {summary.failed} failed"
        f"{f' ({failures})' if failures else ''}, {len(summary.rejected)} rejected lines"
        f"{merged}; {extra}; ${summary.cost:.4f}"
    )
    if summary.failed:
        err.print("run the same command again to retry the failed lines")
    if summary.rejected or summary.failed:
        raise typer.Exit(1)
