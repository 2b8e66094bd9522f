"""``referee review-queue``: pairs a jury split on, written out for human review."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import fail, load_settings, out, run_fast
from app.errors import RefereeError


def review_queue(
    min_disagreement: Annotated[
        float,
        typer.Option(help="Jury disagreement at or above this (0.33 takes 2-1 splits of three)."),
    ],
    output: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    judge: Annotated[str | None, typer.Option(help="Only this jury (its name or spec).")] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch (its id).")] = None,
    include_reviewed: Annotated[
        bool, typer.Option(help="Also pairs a human has labeled already.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write the pairs whose jury disagreed as canonical pair JSONL, for humans to label.

    Each line is {"id", "prompt", "response_a", "response_b", "metadata"}; the
    id is the comparison id (post the label to POST /v1/comparisons/{id}/reviews)
    and metadata.jury holds the jury's winner, disagreement and every vote.
    Disagreement is 1 - (count of the most common member vote) / (counted votes).

    Example: referee review-queue --min-disagreement 0.33 --out to-review.jsonl
    """
    from app.labeling import review_queue as queue
    from app.labeling.runtime import runtime
    from app.store.review_queue import QueueFilters

    if output.exists() and not overwrite:
        fail(f"{output} exists; pass --overwrite to replace it")
    try:
        batch_id = uuid.UUID(batch) if batch is not None else None
    except ValueError:
        fail(f"--batch: {batch!r} is not a batch id")
    filters = QueueFilters(min_disagreement, judge, batch_id, include_reviewed)

    async def run() -> int:
        async with runtime(load_settings()) as labeler:
            queue.check(filters)
            partial = output.with_name(f".{output.name}.partial")
            with partial.open("w", encoding="utf-8") as stream:
                written = await queue.write_jsonl(labeler.db, filters, stream)
            partial.replace(output)
            return written

    try:
        written = run_fast(run())
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    except RefereeError as exc:
        fail(exc.message)
    out.print(f"wrote {written} pairs for review to {output}")
