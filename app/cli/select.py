"""``referee select``: turn a generation's candidates into one preference per prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.cli.console import JudgeOption, err, fail, load_settings, out, run_or_fail

if TYPE_CHECKING:
    from app.labeling.rounds.select import SelectSummary


def select(
    generation: Annotated[str, typer.Argument(help="The generation's name or id.")],
    strategy: Annotated[
        str, typer.Option(help="all-pairs, best-vs-worst or tournament.")
    ] = "best-vs-worst",
    judge: JudgeOption = None,
    margin: Annotated[
        float | None,
        typer.Option(help="all-pairs: wins; best-vs-worst: rating points. Skip below (default 1)."),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option(help="tournament: pairs judged per prompt, each in both orders (default 2n)."),
    ] = None,
    confidence: Annotated[
        float, typer.Option(help="tournament: P(chosen stronger than rejected) needed.")
    ] = 0.95,
    seed: Annotated[int, typer.Option(help="tournament: seeds which pairs are judged.")] = 0,
    rubric: Annotated[
        str | None, typer.Option(help="best-vs-worst: helpfulness (default) or harmlessness.")
    ] = None,
    rubric_text: Annotated[
        str | None, typer.Option(help="best-vs-worst: custom grading criteria.")
    ] = None,
    scale_min: Annotated[int | None, typer.Option(help="Lowest score (default 1).")] = None,
    scale_max: Annotated[int | None, typer.Option(help="Highest score (default 10).")] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Comparisons or ratings in flight at once.")
    ] = 16,
) -> None:
    """Pick chosen and rejected among each prompt's candidates; store every decision.

    all-pairs judges every pair in both orders (n(n-1) calls for n
    candidates) and takes most wins against fewest; best-vs-worst rates each
    candidate and takes the top score against the bottom, skipping prompts
    whose gap is below --margin; tournament judges a seeded, budgeted sample
    of pairs and takes the top and bottom of a Bradley-Terry fit, skipping
    prompts it cannot separate. A failed judge call never becomes a
    preference: its prompt is skipped, and running the same command again
    retries it, reusing every stored judgment (exit code 1 until none fails).

    Examples:

      referee select round-1 --strategy best-vs-worst -j anthropic:claude-sonnet-4-6

      referee select round-1 --strategy all-pairs -j openai:gpt-4o-mini

      referee select round-1 --strategy tournament -j fast --budget 12 --seed 7

    Export the preferences with `referee export dpo --round NAME` (rounds).
    """
    from app.errors import RefereeError
    from app.labeling.rate import RubricChoice
    from app.labeling.rounds.select import SelectOptions, select_preferences
    from app.labeling.runtime import runtime

    settings = load_settings()
    options = SelectOptions(
        margin=margin,
        budget=budget,
        confidence=confidence,
        seed=seed,
        rubric=RubricChoice(rubric, rubric_text, scale_min, scale_max),
        concurrency=concurrency,
    )
    try:
        options.check(strategy)
    except RefereeError as exc:
        fail(exc.message)

    async def run() -> SelectSummary:
        columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False))
        with Progress(*columns, TimeElapsedColumn(), console=err) as bar:
            task = bar.add_task("selecting: 0 prompts decided")
            decided = 0

            def tick() -> None:
                nonlocal decided
                decided += 1
                bar.update(task, description=f"selecting: {decided} prompts decided")

            async with runtime(settings) as labeler:
                return await select_preferences(
                    labeler, generation, strategy, judge, options, on_decided=tick
                )

    summary = run_or_fail(run(), generation)
    report(summary)


def report(summary: SelectSummary) -> None:
    """One line per run; exit 1 while some prompt is skipped for a failed judge call."""
    skipped = {k: v for k, v in sorted(summary.outcomes.items()) if k != "selected"}
    reasons = ", ".join(f"{reason} {n}" for reason, n in skipped.items())
    out.print(
        f"selection {summary.run_id} ({summary.strategy}, {summary.judge}): "
        f"{summary.prompts} prompts, {summary.selected} selected, "
        f"{sum(skipped.values())} skipped{f' ({reasons})' if reasons else ''}; "
        f"{summary.decided_now} decided now, {summary.judged} judged, {summary.reused} reused"
    )
    if "judge_failed" in skipped:
        err.print("run the same command again to retry the prompts whose judge calls failed")
        raise typer.Exit(1)
    if not summary.prompts:
        fail("the generation has no prompts", code=1)
