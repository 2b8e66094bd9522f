"""``referee rate``: grade every response in a file against a rubric."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.console import err, fail, load_settings, out, run_fast
from app.errors import RefereeError


def rate(
    file: Annotated[
        str,
        typer.Argument(help='JSONL of {"id"?, "prompt", "response", "metadata"?}; - for stdin.'),
    ],
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge", "-j", envvar="REFEREE_DEFAULT_JUDGE", help="provider:model or a named judge."
        ),
    ] = None,
    rubric: Annotated[
        str | None, typer.Option(help="helpfulness (default) or harmlessness.")
    ] = None,
    rubric_text: Annotated[
        str | None, typer.Option(help="Custom grading criteria instead of a built-in rubric.")
    ] = None,
    scale_min: Annotated[int | None, typer.Option(help="Lowest score (default 1).")] = None,
    scale_max: Annotated[int | None, typer.Option(help="Highest score (default 10).")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Scores at or above are good (default 7).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Model requests in flight.")] = 32,
) -> None:
    """Rate each response on the rubric's scale, with a rationale; store every call.

    The score becomes good/bad through the threshold, which KTO exports use.
    Running the same command again rates only what is not rated yet (failed
    lines included); bad lines are reported with their line number and the
    exit code is 1.

    Examples:

      referee rate answers.jsonl --judge anthropic:claude-sonnet-4-6

      referee rate answers.jsonl -j openai:gpt-4o-mini --rubric harmlessness --threshold 8

      referee rate a.jsonl -j fast --rubric-text "One sentence?" --scale-max 5 --threshold 4
    """
    from app.labeling.jsonl import open_input, read_records
    from app.labeling.rate import ResponseItemIn, RubricChoice
    from app.labeling.rate_file import RateSummary, rate_records
    from app.runtime import runtime

    source = "<stdin>" if file == "-" else file
    choice = RubricChoice(rubric, rubric_text, scale_min, scale_max, threshold)

    async def run() -> RateSummary:
        async with runtime(load_settings()) as labeler:
            with (
                open_input(file) as stream,
                Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}"),
                    TimeElapsedColumn(),
                    console=err,
                ) as bar,
            ):
                task = bar.add_task("rating")

                def show(s: RateSummary) -> None:
                    bar.update(task, description=f"rated {s.done} ({s.failed} failed)")

                records = read_records(stream, source, ResponseItemIn)
                return await rate_records(
                    labeler, records, source, judge, choice, concurrency, show
                )

    try:
        summary = run_fast(run())
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except RefereeError as exc:
        fail(exc.message)
    for line_error in summary.rejected:
        err.print(str(line_error), markup=False)
    failures = ", ".join(f"{name} {count}" for name, count in sorted(summary.failures.items()))
    out.print(
        f"{summary.rated} rated, {summary.reused} already rated, {summary.failed} failed"
        f"{f' ({failures})' if failures else ''}, {len(summary.rejected)} rejected lines; "
        f"{summary.passed} passed the threshold; ${summary.cost:.4f}"
    )
    if summary.failed:
        err.print("run the same command again to rate the failed lines again")
    if summary.rejected or summary.failed:
        raise typer.Exit(1)
