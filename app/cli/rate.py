"""``referee rate``: grade every response in a file against a rubric."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.console import (
    EmptyOption,
    JudgeOption,
    progress_spinner,
    report_run,
    run_or_fail,
    settings_with_empty,
)


def rate(
    file: Annotated[
        str,
        typer.Argument(help='JSONL of {"id"?, "prompt", "response", "metadata"?}; - for stdin.'),
    ],
    judge: JudgeOption = None,
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
    rpm: Annotated[float | None, typer.Option(help="Client-side limit, requests/minute.")] = None,
    tpm: Annotated[float | None, typer.Option(help="Client-side limit, tokens/minute.")] = None,
    empty: EmptyOption = None,
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

      referee rate big.jsonl -j openai:gpt-4o-mini --rpm 500 --tpm 200000
    """
    from app.labeling.item_runs import ItemResult, RunSummary, run_records
    from app.labeling.jsonl import open_input, read_records
    from app.labeling.rate import Rater, ResponseItemIn, RubricChoice
    from app.labeling.runtime import runtime

    settings = settings_with_empty(empty)
    source = "<stdin>" if file == "-" else file
    choice = RubricChoice(rubric, rubric_text, scale_min, scale_max, threshold)

    async def run() -> RunSummary:
        async with runtime(settings) as labeler:
            # Resolve up front: a bad judge or rubric fails the run before any line.
            labeler.judge_for(labeler.with_limits(labeler.resolve(judge), rpm, tpm))
            choice.resolve()
            rater = Rater(labeler)

            async def rate_one(item: ResponseItemIn) -> ItemResult:
                result = await rater.rate(item, judge, choice, rpm=rpm, tpm=tpm)
                passed = "passed" if result.rating.passed else None
                return ItemResult(result.created, result.rating.calls, passed)

            with open_input(file) as stream, progress_spinner("rating") as show:
                records = read_records(stream, source, ResponseItemIn)
                return await run_records(records, source, concurrency, rate_one, show)

    summary = run_or_fail(run(), file)
    report_run(summary, "rated", f"{summary.tags['passed']} passed the threshold")
