"""``referee revise``: critique and revise every response in a file under a constitution."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import (
    EmptyOption,
    out,
    progress_spinner,
    report_run,
    run_or_fail,
    settings_with_empty,
)


def revise(
    file: Annotated[
        str,
        typer.Argument(help='JSONL of {"id"?, "prompt", "response"?, "metadata"?}; - for stdin.'),
    ],
    constitution: Annotated[str, typer.Option(help="The constitution's id.")],
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            "-j",
            envvar="REFEREE_DEFAULT_JUDGE",
            help="The model that critiques and revises.",
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Critique → revision rounds at most.")] = 1,
    principle: Annotated[str | None, typer.Option(help="Use this principle every round.")] = None,
    seed: Annotated[str, typer.Option(help="Seeds the principle sampled per round.")] = "0",
    generator: Annotated[
        str | None, typer.Option(help="Writes the initial response of lines that have none.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Lines worked on at once.")] = 16,
    rpm: Annotated[float | None, typer.Option(help="Client-side limit, requests/minute.")] = None,
    tpm: Annotated[float | None, typer.Option(help="Client-side limit, tokens/minute.")] = None,
    empty: EmptyOption = None,
) -> None:
    """Critique each response against sampled principles and revise it, round by round.

    A critique that finds nothing to fix ends a line's loop without a
    revision. With prompts only and --generator, a model first writes the
    responses (red-team prompts in, a CAI dataset out). Running the same
    command again reuses finished lines and retries failed ones. Export the
    results with `referee export {sft,dpo,kto} --source revisions`.

    Examples:

      referee revise red-team.jsonl --constitution harmlessness -j anthropic:claude-sonnet-4-6

      referee revise prompts.jsonl --constitution hhh -j fast --generator openai:gpt-4o-mini
    """
    from app.labeling.item_runs import ItemResult, RunSummary, run_records
    from app.labeling.jsonl import open_input, read_records
    from app.labeling.revise import Reviser, RevisionItemIn, RevisionOptions
    from app.labeling.runtime import runtime
    from app.store import batches

    settings = settings_with_empty(empty)
    source = "<stdin>" if file == "-" else file
    origin = source if file == "-" else str(Path(file).resolve())

    async def run() -> RunSummary:
        async with runtime(settings) as labeler:
            reviser = Reviser(labeler)
            draft = RevisionOptions(
                constitution, judge, rounds, principle, seed, generator, rpm=rpm, tpm=tpm
            )
            # Resolve up front: a bad judge or constitution fails the run before any line.
            used, config, _ = reviser.check(draft)
            name = f"{origin}|{config.label}|{used.ref}|revise"
            async with labeler.db.transaction() as session:
                batch, _ = await batches.get_or_create(session, name, origin, config.label)
            options = dataclasses.replace(draft, batch_id=batch.id)
            out.print(f"batch {batch.name} ({batch.id})")

            async def revise_one(item: RevisionItemIn) -> ItemResult:
                result = await reviser.revise(item, options)
                revised = "revised" if result.revision.revised else None
                return ItemResult(result.created, result.revision.calls, revised)

            with open_input(file) as stream, progress_spinner("revising") as show:
                records = read_records(stream, source, RevisionItemIn)
                return await run_records(records, source, concurrency, revise_one, show)

    summary = run_or_fail(run(), file)
    report_run(summary, "revised", f"{summary.tags['revised']} needed a revision")
