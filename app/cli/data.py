"""``referee export`` and ``referee feedback``: datasets out, production signals in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.console import RejectPrinter, err, fail, load_settings, out, run_or_fail
from app.errors import RefereeError

if TYPE_CHECKING:
    from app.export.options import ExportOptions
    from app.export.run import ExportResult

feedback_cli = typer.Typer(help="Production thumbs-up/down feedback.", no_args_is_help=True)


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: {value!r} is not an ISO 8601 time such as 2026-11-27T00:00:00Z")
    if moment.tzinfo is None:
        fail(f"--{name}: {value!r} needs a time zone, such as Z or +01:00")
    return moment


def export(
    kind: Annotated[str, typer.Argument(help="dpo, kto or sft.")],
    output: Annotated[
        Path,
        typer.Option("--out", "-o", help="A folder (dataset + card), or a .jsonl/.parquet file."),
    ],
    file_format: Annotated[
        str | None, typer.Option("--format", help="jsonl, parquet or hf (save_to_disk folder).")
    ] = None,
    shape: Annotated[
        str, typer.Option(help="conversational (message lists) or text (plain strings).")
    ] = "conversational",
    judge: Annotated[list[str] | None, typer.Option(help="Only this judge; repeatable.")] = None,
    batch: Annotated[list[str] | None, typer.Option(help="Only this batch (name or id).")] = None,
    min_confidence: Annotated[float | None, typer.Option(help="Verdict confidence ≥ this.")] = None,
    consistent_only: Annotated[
        bool, typer.Option(help="Only verdicts that agreed in both orders.")
    ] = False,
    max_length_ratio: Annotated[
        float | None, typer.Option(help="Drop pairs whose longer response is over R times longer.")
    ] = None,
    max_disagreement: Annotated[
        float | None,
        typer.Option(help="Jury verdicts with member disagreement ≤ this (juries only)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Labels made at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Labels made before (ISO 8601).")] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="verdicts, ratings, feedback, revisions; repeatable. DPO: human (reviews and "
            "imported gold labels; with --provenance, a reviewers column)."
        ),
    ] = None,
    loser_min_confidence: Annotated[
        float, typer.Option(help="KTO: a pairwise loser is undesirable from this confidence.")
    ] = 0.75,
    kto_contradictions: Annotated[
        str,
        typer.Option(
            help="KTO: a prompt and completion labeled both ways: drop every such row, keep "
            "the majority label (an even split is dropped), or keep all."
        ),
    ] = "drop",
    provenance: Annotated[
        bool,
        typer.Option(help="Add id, external_id, source, judge, confidence, disagreement columns."),
    ] = False,
    keep_duplicates: Annotated[bool, typer.Option(help="Keep identical rows.")] = False,
    test_size: Annotated[float, typer.Option(help="Fraction in a test split (by hash).")] = 0.0,
    split_by: Annotated[str, typer.Option(help="id, or prompt (a prompt never straddles).")] = "id",
    round_name: Annotated[
        str | None,
        typer.Option(
            "--round", help="DPO: this round's chosen/rejected pairs (referee round run)."
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", help="KTO/SFT: the rewards stored for this training run (metadata.run)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="Write an empty dataset instead of failing.")
    ] = False,
) -> None:
    """Write a DPO, KTO or SFT dataset that TRL loads as it is.

    Streams from the database: memory stays flat however many rows. A
    folder gets train (and test) files and a README.md dataset card.

    Examples:

      referee export dpo --out prefs/ --consistent-only --max-length-ratio 2

      referee export kto --out kto/ --format parquet --test-size 0.05 --split-by prompt

      referee export sft --out sft.jsonl --judge anthropic:claude-sonnet-4-6

      referee export kto --run grpo-7 --out grpo-7-kto.jsonl

      referee export dpo --round r2 --out r2/

      referee export dpo --source human --provenance --out human-prefs.jsonl
    """
    from app.export.options import (
        ContradictionRule,
        ExportOptions,
        Filters,
        Shape,
        Source,
        SplitBy,
        parse_enum,
    )
    from app.export.run import export_to_path, is_kind

    try:
        options = ExportOptions(
            kind=is_kind(kind),
            shape=parse_enum(Shape, shape, "shape"),
            filters=Filters(
                judges=tuple(judge or ()),
                batches=tuple(batch or ()),
                min_confidence=min_confidence,
                consistent_only=consistent_only,
                max_length_ratio=max_length_ratio,
                max_disagreement=max_disagreement,
                since=_moment(since, "since"),
                until=_moment(until, "until"),
            ),
            sources=tuple(parse_enum(Source, s, "source") for s in source or ()),
            loser_min_confidence=loser_min_confidence,
            provenance=provenance,
            deduplicate=not keep_duplicates,
            test_size=test_size,
            split_by=parse_enum(SplitBy, split_by, "split_by"),
            kto_contradictions=parse_enum(
                ContradictionRule, kto_contradictions, "kto_contradictions"
            ),
            run=run,
            round=round_name,
        )
        result = export_to_path(
            load_settings().database_url,
            options,
            output,
            file_format,
            overwrite=overwrite,
            allow_empty=allow_empty,
        )
    except RefereeError as exc:
        fail(exc.message)
    _print_export(result, options)


def _print_export(result: ExportResult, options: ExportOptions) -> None:
    from app.export.card import contradictions

    kind = options.kind.value
    stats = result.stats
    splits = ", ".join(f"{name} {count}" for name, count in sorted(stats.splits.items()))
    out.print(
        f"wrote {stats.rows} {kind} rows ({splits or 'empty'}) to {result.path} "
        f"as {result.format.value}; {stats.duplicates} duplicates dropped"
    )
    if kind == "dpo":
        out.print(f"{stats.ties} ties left out (a tie has no chosen response)")
    if kind == "kto":
        desirable_weight, undesirable_weight = result.kto_weights
        out.print(
            f"desirable {stats.desirable}, undesirable {stats.undesirable}: use KTOConfig("
            f"desirable_weight={desirable_weight}, undesirable_weight={undesirable_weight})"
        )
        out.print(f"contradictions: {contradictions(options, stats)}")
        if not (stats.desirable and stats.undesirable):
            err.print("warning: KTO needs both desirable and undesirable rows to learn a contrast")


@feedback_cli.command("import")
def feedback_import(
    file: Annotated[str, typer.Argument(help="JSONL (or .gz, or a JSON array); - for stdin.")],
) -> None:
    """Store thumbs-up/down records from a file, as POST /v1/feedback does.

    Each line: {"prompt", "completion", "label": true|false|"up"|"down", "source"?,
    "user_id"?, "session_id"?, "metadata"?, "occurred_at"?, "idempotency_key"?}.
    Importing the same file again adds nothing. Bad lines are reported with
    their line number and the exit code is 1; the good ones are stored.

    Example: referee feedback import thumbs-2026-11.jsonl
    """
    from app.labeling.feedback import FeedbackIn, IngestSummary, ingest
    from app.labeling.jsonl import open_input, read_records
    from app.labeling.runtime import runtime

    source = "<stdin>" if file == "-" else file

    async def run() -> IngestSummary:
        async with runtime(load_settings()) as labeler:
            with open_input(file) as stream:
                return await ingest(labeler.db, read_records(stream, source, FeedbackIn))

    summary = run_or_fail(run(), file)
    printer = RejectPrinter()
    for item in summary.rejected:
        printer(f"{source}:{item['line']}: {item['reason']}")
    printer.finish()
    out.print(
        f"{summary.accepted} stored, {summary.duplicates} already stored, "
        f"{len(summary.rejected)} rejected"
    )
    if summary.rejected:
        raise typer.Exit(1)
