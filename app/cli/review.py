"""``referee review-queue``: review queues for the /review page, and split pairs as JSONL.

``create`` makes a queue (the pairs of a kind, guidelines, overlap k),
``list`` shows each queue's progress, and ``export`` (also run as the bare
``referee review-queue --min-disagreement … --out …``) writes the pairs a
jury split on as canonical pair JSONL.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import fail, load_settings, out, run_fast
from app.errors import RefereeError

review_cli = typer.Typer(
    help="Review queues for people (the /review page), and split pairs as JSONL.",
    invoke_without_command=True,
)


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

    Example: referee review-queue export --min-disagreement 0.33 --out to-review.jsonl
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


review_cli.command("export")(review_queue)


@review_cli.callback()
def review_queue_group(
    ctx: typer.Context,
    min_disagreement: Annotated[
        float | None,
        typer.Option(help="As `export`: disagreement at or above this.", show_default=False),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="As `export`: JSONL file to write.")
    ] = None,
    judge: Annotated[str | None, typer.Option(help="As `export`: only this jury.")] = None,
    batch: Annotated[str | None, typer.Option(help="As `export`: only this batch.")] = None,
    include_reviewed: Annotated[
        bool, typer.Option(help="As `export`: also pairs a human labeled.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="As `export`: replace the file.")] = False,
) -> None:
    """Review queues (create, list) and the JSONL of split pairs (export).

    Without a subcommand, `referee review-queue --min-disagreement X --out FILE`
    runs `export`, as it always did.
    """
    if ctx.invoked_subcommand is not None:
        if min_disagreement is not None or output is not None:
            fail(f"--min-disagreement and --out belong to `export`, not {ctx.invoked_subcommand}")
        return
    if min_disagreement is None or output is None:
        out.print(ctx.get_help())
        raise typer.Exit(0 if min_disagreement is None and output is None else 2)
    review_queue(min_disagreement, output, judge, batch, include_reviewed, overwrite)


@review_cli.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The queue's name: letters, digits, . _ -.")],
    kind: Annotated[
        str,
        typer.Option(
            help="disagreement | inconsistent | low-confidence | judges-disagree | audit | no-gold"
        ),
    ],
    batch: Annotated[
        str | None, typer.Option(help="Only this batch (its name or id); audit needs one.")
    ] = None,
    overlap: Annotated[int, typer.Option(help="k: reviewers who answer each item.")] = 1,
    guidelines: Annotated[
        Path | None, typer.Option(help="Markdown file shown beside every item.")
    ] = None,
    show_machine: Annotated[
        bool, typer.Option("--show-machine", help="Show the judges' verdicts (blind otherwise).")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(help="disagreement: at least this; low-confidence: below this (0.6)."),
    ] = None,
    size: Annotated[int | None, typer.Option(help="audit: sample size (200).")] = None,
    seed: Annotated[int, typer.Option(help="audit: the sample's seed.")] = 0,
) -> None:
    """Make a review queue of the pairs a kind selects.

    Kinds: disagreement (a jury split), inconsistent (the verdict changed with
    the order shown), low-confidence, judges-disagree (two judges, one pair,
    different winners), audit (a seeded uniform random sample of a batch:
    agreement measured on it is unbiased for the batch), no-gold (pairs no
    human label covers). Reviewers answer it at /review.

    Examples:

      referee review-queue create hard --kind disagreement --overlap 3 --guidelines guide.md

      referee review-queue create audit-1 --kind audit --batch hh-test --size 300 --seed 1
    """
    from pydantic import ValidationError

    from app.labeling.review.manage import create_from_cli

    text = ""
    if guidelines is not None:
        try:
            text = guidelines.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {guidelines}: {getattr(exc, 'strerror', None) or exc}")
    values = {
        "name": name,
        "kind": kind,
        "overlap": overlap,
        "guidelines": text,
        "show_machine": show_machine,
        "threshold": threshold,
        "size": size,
        "seed": seed,
    }
    try:
        made = run_fast(create_from_cli(load_settings(), values, batch))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "queue"
        fail(f"{where}: {first['msg']}")
    except RefereeError as exc:
        fail(exc.message)
    out.print(f"made review queue {made.name} ({made.kind}, k={made.overlap}): {made.items} items")


@review_cli.command("list")
def list_queues(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Every review queue and its progress: items, done (k answers in), answers, reviewers."""
    import json

    from rich.table import Table
    from rich.text import Text

    from app.labeling.review.manage import overview_from_cli

    try:
        rows = run_fast(overview_from_cli(load_settings()))
    except RefereeError as exc:
        fail(exc.message)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        out.print("no review queues; make one with `referee review-queue create NAME --kind …`")
        return
    table = Table(title="Review queues", title_justify="left")
    for column in ("name", "kind", "k", "items", "done", "answers", "reviewers", "blind"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            Text(row["name"]),
            row["kind"],
            str(row["overlap"]),
            str(row["items"]),
            str(row["done"]),
            str(row["answers"]),
            str(row["reviewers"]),
            "no" if row["show_machine"] else "yes",
        )
    out.print(table)
