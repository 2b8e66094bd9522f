"""``referee report`` (how good are the labels?) and ``referee gold import`` (human labels in)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.console import RejectPrinter, err, fail, load_settings, out, run_or_fail
from app.cli.inspect import GoldConflictChoice, GoldConflictOption, MapOption, print_gold
from app.errors import RefereeError

if TYPE_CHECKING:
    from app.labeling.gold import GoldImportSummary
    from app.reports.metrics import Bootstrap
    from app.store.db import Database


@asynccontextmanager
async def database() -> AsyncIterator[Database]:
    """The database alone, schema checked: reports and imports need no judges.

    The check is app.labeling.runtime.ensure_schema's, without importing the
    labeling runtime (its judges and SDKs are a second of a report's start-up).
    """
    from app.errors import SchemaOutdatedError
    from app.store import migrate
    from app.store.db import Database

    settings = load_settings()
    url = settings.database_url
    if not await asyncio.to_thread(migrate.is_up_to_date, url):
        if not settings.auto_migrate:
            raise SchemaOutdatedError(
                "the database schema is not up to date: run `referee db upgrade` "
                "(or set REFEREE_AUTO_MIGRATE=1)"
            )
        await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()


gold_cli = typer.Typer(help="Human (gold) labels to measure judges against.", no_args_is_help=True)


def report(
    judge: Annotated[str | None, typer.Option("--judge", "-j", help="Only this judge.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch (name or id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as an HTML page here.")
    ] = None,
    resamples: Annotated[int, typer.Option(min=1, help="Bootstrap resamples.")] = 1000,
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence level of the intervals.")
    ] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (same seed, same report).")] = 0,
    bins: Annotated[int, typer.Option(min=2, max=100, help="Calibration bins.")] = 10,
    rounds: Annotated[
        bool,
        typer.Option(
            "--rounds", help="Did each round help: its policy's win rate against its parent's."
        ),
    ] = False,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="An online training run's rewards (metadata.run of POST /v1/rewards items).",
        ),
    ] = None,
) -> None:
    """How good are the labels: agreement with human labels, biases, calibration, cost.

    Per judge and per batch: agreement with gold labels (ties counted and
    ties excluded) and Cohen's kappa, position consistency, length bias,
    tie and failure rates, calibration of confidence, cost per 1,000 labels,
    and agreement between judges that labeled the same pairs. Intervals are
    seeded bootstrap intervals. Gold labels come from labeled input files
    (`referee label` on a file with a "label" field, hh-rlhf, PandaLM,
    LLMBar), `referee gold import`, and reviews (POST
    /v1/comparisons/{id}/reviews).

    Examples:

      referee report

      referee report --batch 3f1c… --json > report.json

      referee report --judge anthropic:claude-sonnet-4-6 --html report.html

      referee report --rounds

      referee report --run grpo-7 --json
    """
    from app.reports.build import ReportOptions, build_report
    from app.reports.metrics import Bootstrap

    if run is not None:
        if judge or batch or rounds:
            fail(
                "--run reports a training run's rewards; --judge, --batch and --rounds do not apply"
            )
        report_run(run, as_json, html)
        return
    if rounds:
        if judge or batch or html:
            fail(
                "--rounds reports each round against its parent; --judge, --batch and --html "
                "belong to the judge-quality report"
            )
        report_rounds(Bootstrap(resamples=resamples, confidence=confidence, seed=seed), as_json)
        return

    options = ReportOptions(
        judge=judge,
        batch=batch,
        bootstrap=Bootstrap(resamples=resamples, confidence=confidence, seed=seed),
        calibration_bins=bins,
    )

    async def build() -> dict[str, Any]:
        async with database() as db:
            return await build_report(db, options)

    try:
        result = asyncio.run(build())
    except RefereeError as exc:
        fail(exc.message)
    if html is not None:
        write_html(result, html)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    from app.reports.text import render

    out.print(render(result))


def report_rounds(boot: Bootstrap, as_json: bool) -> None:
    """``referee report --rounds``: each round against its parent (app.reports.rounds)."""
    from app.reports.rounds import render_text, rounds_report

    async def run() -> dict[str, Any]:
        async with database() as db:
            return await rounds_report(db, boot)

    try:
        result = asyncio.run(run())
    except RefereeError as exc:
        fail(exc.message)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    out.print(render_text(result), end="")


def report_run(run: str, as_json: bool, html: Path | None) -> None:
    """``referee report --run RUN``: an online run's rewards (app.reports.reward_run)."""
    from app.reports.reward_run import render_text, run_report

    async def build() -> dict[str, Any]:
        async with database() as db:
            return await run_report(db, run)

    try:
        result = asyncio.run(build())
    except RefereeError as exc:
        fail(exc.message)
    if html is not None:
        write_html(result, html, run=True)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    out.print(render_text(result), end="")


def write_html(result: dict[str, Any], path: Path, *, run: bool = False) -> None:
    """The HTML page of the report (app.reports.html), written to ``path``."""
    try:
        from app.reports.html import render_report, render_run
    except ImportError as exc:
        fail(f"the HTML report needs the report extra (pip install 'referee[report]'): {exc}")
    try:
        page = render_run(result) if run else render_report(result)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    except RefereeError as exc:
        fail(exc.message)
    err.print(f"wrote {path}")


@gold_cli.command("import")
def gold_import(
    file: Annotated[
        str,
        typer.Argument(help="JSONL (or .jsonl.gz, or a JSON array) of labeled pairs; - for stdin."),
    ],
    input_format: Annotated[
        str, typer.Option("--format", help="auto, canonical, trl, hh-rlhf, pandalm or llmbar.")
    ] = "auto",
    mapping: MapOption = None,
    gold_conflict: GoldConflictOption = GoldConflictChoice.newest,
) -> None:
    """Store a human-labeled set's labels as gold labels, without judging anything.

    Canonical lines carry "label": "a"|"b"|"tie". TRL and hh-rlhf rows
    (chosen is the human preference) put chosen in a or b by a hash of the
    pair; PandaLM takes the majority of its three annotators (0 = tie, no
    majority = tie) and keeps their votes; LLMBar's 1|2 is a|b. Importing
    the same file again adds nothing. Lines holding the same pair make one
    gold label that keeps all their ids; --gold-conflict settles labels that
    disagree. Judge the same file later with `referee label` and `referee
    report` compares.

    Examples:

      referee gold import testset-v1.json

      referee gold import harmless-base.test.jsonl.gz --format hh-rlhf
    """
    from app.labeling.field_maps import load_map
    from app.labeling.gold import import_gold
    from app.labeling.jsonl import open_input, read_pairs
    from app.labeling.shapes import converter

    source = "<stdin>" if file == "-" else file
    origin = "<stdin>" if file == "-" else str(Path(file).resolve())

    async def run() -> GoldImportSummary:
        convert = converter(input_format, load_map(mapping) if mapping else None)
        async with database() as db:
            with open_input(file) as stream:
                records = read_pairs(stream, source, convert)
                return await import_gold(db, records, origin, gold_conflict.value)

    summary = run_or_fail(run(), file)
    printer = RejectPrinter()
    for error in summary.rejected:
        printer(error)
    printer.finish()
    winners = summary.winners
    out.print(
        f"{summary.records} lines read: {summary.labeled} gold labels (a {winners['a']}, "
        f"b {winners['b']}, tie {winners['tie']}), {summary.new} new; "
        f"{summary.ledger.duplicates} duplicate lines merged, "
        f"{summary.unlabeled} lines without a label, {len(summary.rejected)} rejected lines"
    )
    print_gold(summary.ledger)
    if summary.rejected:
        raise typer.Exit(1)
