"""``referee label`` and ``referee worker``: judge a file of pairs, or work off a shared queue."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from app.cli.console import (
    EmptyOption,
    JudgeOption,
    RejectPrinter,
    err,
    fail,
    load_settings,
    out,
    run_fast,
)
from app.cli.inspect import GoldConflictChoice, GoldConflictOption, MapOption, print_gold
from app.errors import RefereeError
from app.labeling.jsonl import open_input

MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=65535,
        help="Serve Prometheus metrics on this port while the run lasts (no key asked;"
        " interface REFEREE_METRICS_HOST, default 127.0.0.1).",
    ),
]

if TYPE_CHECKING:
    from app.labeling.batch import Progress
    from app.labeling.provider_batch import ProviderBatchOptions
    from app.labeling.run import Estimate, LabelOptions, LabelSummary
    from app.settings import Settings


def label(
    file: Annotated[
        str, typer.Argument(help="JSONL (or .jsonl.gz, or a JSON array) of pairs; - for stdin.")
    ],
    judge: JudgeOption = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Model requests in flight at once (two per pair).")
    ] = 32,
    rpm: Annotated[float | None, typer.Option(help="Client-side limit, requests/minute.")] = None,
    tpm: Annotated[float | None, typer.Option(help="Client-side limit, tokens/minute.")] = None,
    retry_failed: Annotated[
        bool, typer.Option(help="Judge this batch's failed pairs again.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Estimate tokens and cost; send nothing.")] = False,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop cleanly once this many USD are spent.")
    ] = None,
    input_format: Annotated[
        str, typer.Option("--format", help="auto, canonical, trl, hh-rlhf, pandalm or llmbar.")
    ] = "auto",
    mapping: MapOption = None,
    gold_conflict: GoldConflictOption = GoldConflictChoice.newest,
    batch: Annotated[str | None, typer.Option(help="Batch name (default: file + judge).")] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Where bad lines go (default: FILE.rejects.jsonl).")
    ] = None,
    constitution: Annotated[
        str | None, typer.Option(help="Judge under this constitution's principles (its id).")
    ] = None,
    principles: Annotated[
        int, typer.Option(min=1, help="With --constitution: principles sampled per pair, averaged.")
    ] = 1,
    mode: Annotated[
        str,
        typer.Option(
            help="live (calls as they go) or provider-batch (the providers' batch APIs, "
            "half price, results within 24 h)."
        ),
    ] = "live",
    poll_interval: Annotated[
        float, typer.Option(min=0.01, help="With provider-batch: seconds between status checks.")
    ] = 30.0,
    identical: Annotated[
        str | None,
        typer.Option(
            help="Identical responses: tie (stored as a tie, no judge call), judge or reject "
            "(default: REFEREE_IDENTICAL_RESPONSES, else tie)."
        ),
    ] = None,
    empty: EmptyOption = None,
    criteria: Annotated[
        str | None,
        typer.Option(
            help="Judge by these criteria (free text, or a named entry: referee templates "
            "list), for lines that carry none of their own. Part of the label key."
        ),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option(
            help="Judge with this template (id or ref) instead of the judge's own; give it "
            "twice or more to judge the file under each, one batch each, in one run."
        ),
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Judge every pair in a file (both orders) and store the verdicts.

    Lines are canonical pairs {"id"?, "prompt", "response_a", "response_b",
    "metadata"?}, TRL rows (prompt/chosen/rejected), hh-rlhf transcripts,
    PandaLM or LLMBar items, or anything with --map. Killed or interrupted,
    the same command resumes: finished pairs are never judged again. Bad
    lines are reported with their line number and written to a rejects
    file; the others proceed; the exit code is 1 if any line was rejected.
    Lines repeating a pair are judged once. --dry-run reads the file the
    same way: the same rejects, the same exit code, nothing stored or sent.

    Examples:

      referee label pairs.jsonl --judge anthropic:claude-sonnet-4-6 --concurrency 64

      referee label prefs.jsonl.gz --judge openai:gpt-4o-mini --rpm 500 --max-cost 20

      referee label pairs.jsonl --judge openai:gpt-4o-mini --dry-run

      referee label big.jsonl --judge anthropic:claude-sonnet-4-5 --mode provider-batch

      cat pairs.jsonl | referee label - --judge fast --retry-failed

      referee label gold.jsonl --judge fast --template pairwise-v1 --template pairwise-v2
    """
    from app.labeling.field_maps import load_map
    from app.labeling.run import LabelOptions
    from app.labeling.screening import TextPolicy
    from app.labeling.shapes import converter
    from app.labeling.templating import with_criteria

    settings = load_settings()
    # Error lines name the file as given; the batch is keyed by its absolute
    # path so the same file resumes from any directory.
    source = "<stdin>" if file == "-" else file
    try:
        options = LabelOptions(
            judge=judge,
            concurrency=concurrency,
            rpm=rpm,
            tpm=tpm,
            retry_failed=retry_failed,
            max_cost=Decimal(str(max_cost)) if max_cost is not None else None,
            batch_name=batch,
            origin="<stdin>" if file == "-" else str(Path(file).resolve()),
            rejects_path=rejects or Path(("stdin" if file == "-" else file) + ".rejects.jsonl"),
            convert=with_criteria(
                converter(input_format, load_map(mapping) if mapping else None), criteria
            ),
            gold_conflict=gold_conflict.value,
            constitution=constitution,
            principles=principles,
            provider_batch=_provider_batch(mode, poll_interval, concurrency, max_cost),
            policy=TextPolicy.parse(
                identical or settings.identical_responses, empty or settings.empty_texts
            ),
        )
    except RefereeError as exc:
        fail(exc.message)
    templates: list[str | None] = [*template] if template else [None]
    if len(templates) > 1 and file == "-":
        fail("several --template options read the file once each: give a file, not -")
    if dry_run:
        gc.enable()  # no judging to start: the estimate reads the whole file now
    failed = False
    try:
        for each in templates:
            options.template = each
            if len(templates) > 1:
                out.print(f"template {each}:")
            failed |= _label_once(settings, file, source, options, dry_run, metrics_port)
    finally:
        gc.enable()  # paused for start-up by main() (app.cli.pause_collector)
    if failed:
        raise typer.Exit(1)


def _provider_batch(
    mode: str, poll_interval: float, concurrency: int, max_cost: float | None
) -> ProviderBatchOptions | None:
    if mode == "live":
        return None  # and the provider SDKs provider batches use are not imported
    from app.labeling.provider_batch import provider_batch_options

    budget = Decimal(str(max_cost)) if max_cost is not None else None
    return provider_batch_options(mode, poll_interval, concurrency, budget)


def _label_once(
    settings: Settings,
    file: str,
    source: str,
    options: LabelOptions,
    dry_run: bool,
    metrics_port: int | None = None,
) -> bool:
    """Judge (or estimate) the file once with ``options``; whether the run should exit 1."""
    from app.labeling.metrics_serving import observed
    from app.labeling.run import estimate, label_stream

    try:
        stream = open_input(file)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except RefereeError as exc:
        fail(exc.message)
    with stream:
        try:
            if dry_run:
                printer = RejectPrinter()
                result = asyncio.run(estimate(settings, stream, source, options, printer))
                printer.finish()
                print_estimate(result)
                print_gold(result.gold)
                return result.rejected > 0  # the real run's exit code for the same file
            printer = RejectPrinter(where=str(options.rejects_path))
            summary = run_fast(
                observed(
                    settings,
                    metrics_port,
                    label_stream(settings, stream, source, options, progress_view, printer),
                )
            )
            printer.finish()
        except RefereeError as exc:
            fail(exc.message)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
    print_summary(summary, file)
    print_gold(summary.gold)
    return bool(summary.rejected or summary.status_counts.get("failed"))


@contextmanager
def progress_view(total: int) -> Iterator[Callable[[Progress], None]]:
    """A progress bar with rate, ETA, tokens and cost so far."""
    columns = (
        TextColumn("judging"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeRemainingColumn(),
        TextColumn("{task.fields[tokens]} tok  ${task.fields[cost]}", markup=False),
    )
    # Judging starts now: what start-up built (modules, the SDK's types) lives to the end.
    # Frozen, the collector no longer walks it on every full collection, nor at exit; and
    # it runs again (main() paused it for start-up: app.cli.pause_collector).
    gc.freeze()
    gc.enable()
    started = time.monotonic()
    # Redrawn 4 times a second (rich's default is 10): its thread takes the GIL from the loop.
    with RichProgress(*columns, console=err, transient=False, refresh_per_second=4) as bar:
        task = bar.add_task("judging", total=total, rate="", tokens=0, cost="0.00")

        def update(p: Progress) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(
                task,
                total=p.queued if p.queued is not None else total,
                completed=p.done,
                rate=f"{p.done / elapsed:.1f} pairs/s",
                tokens=p.input_tokens + p.output_tokens,
                cost=f"{p.cost:.4f}",
            )

        yield update


def print_estimate(result: Estimate) -> None:
    def usd(cost: Decimal | None) -> str:
        return f"${cost:.4f}" if cost is not None else "unknown (model not in the price table)"

    cached = ""
    if result.cache_read_tokens or result.cache_write_tokens:
        cached = (
            f" (of which ~{result.cache_write_tokens} written to and "
            f"~{result.cache_read_tokens} read from the prompt cache)"
        )
    out.print(
        f"dry run: {result.pairs} pairs, {result.calls} calls, "
        f"~{result.input_tokens + result.cache_read_tokens + result.cache_write_tokens} input"
        f"{cached} + ~{result.output_tokens} output tokens; "
        f"{result.rejected} lines would be rejected, {result.merged} duplicate lines merged, "
        f"{result.ruled} identical pairs tied without a call, {result.stored} already judged\n"
        f"estimated cost {usd(result.cost)} live  |  "
        f"{usd(result.batch_cost)} with --mode provider-batch"
    )


def print_summary(summary: LabelSummary, file: str) -> None:
    p, counts = summary.progress, summary.status_counts
    outcome = summary.outcome_counts
    failures = ", ".join(
        f"{k.split(':', 1)[1]} {v}" for k, v in sorted(outcome.items()) if k.startswith("failed:")
    )
    out.print(
        f"batch {summary.batch_id}: {counts.get('labeled', 0)} labeled "
        f"({outcome.get('tied', 0)} tied, {outcome.get('position_biased', 0)} position-biased), "
        f"{counts.get('failed', 0)} failed{f' ({failures})' if failures else ''}, "
        f"{counts.get('pending', 0)} pending, {summary.rejected} rejected lines, "
        f"{summary.merged} duplicate lines merged, "
        f"{summary.ruled} identical pairs tied without a call; "
        f"this run judged {p.done} pairs in {p.elapsed_s:.1f} s "
        f"({p.done / p.elapsed_s if p.elapsed_s else 0:.1f} pairs/s), "
        f"{p.input_tokens + p.output_tokens} tokens, ${p.cost:.4f}"
    )
    if p.cache_read_tokens or p.cache_write_tokens:
        out.print(
            f"prompt cache: {p.cache_write_tokens} tokens written, {p.cache_read_tokens} read"
        )
    if p.truncated:
        err.print(
            f"{p.truncated} calls had the start of their prompt cut to fit the model's context"
        )
    if p.stop_reason:
        err.print(f"stopped: {p.stop_reason}. Run the same command again to resume.")
    if counts.get("failed"):
        err.print("re-run with --retry-failed to judge the failed pairs again")


def worker(
    concurrency: Annotated[
        int, typer.Option(min=1, help="Model requests in flight at once (two per pair).")
    ] = 32,
    batch: Annotated[str | None, typer.Option(help="Only this batch id.")] = None,
    forever: Annotated[bool, typer.Option(help="Keep polling for new work.")] = False,
    lease_seconds: Annotated[
        float, typer.Option(help="Lease length; renewed while judging.")
    ] = 120.0,
    rpm: Annotated[
        float | None, typer.Option(help="Requests/minute per judge, shared by every worker.")
    ] = None,
    tpm: Annotated[
        float | None, typer.Option(help="Tokens/minute per judge, shared by every worker.")
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Work off pending pairs from the shared database, beside any number of other workers.

    On PostgreSQL, workers on any machines claim disjoint pairs (FOR UPDATE
    SKIP LOCKED) under leases; a worker that dies loses its leases and the
    others finish its pairs. On SQLite run one worker.

    Example: REFEREE_DATABASE_URL=postgresql://… referee worker --concurrency 64 --forever

    Example, with Prometheus metrics on port 9101: referee worker --forever --metrics-port 9101
    """
    from app.labeling.metrics_serving import observed
    from app.labeling.worker import run_worker

    settings = load_settings()
    try:
        progress = run_fast(
            observed(
                settings,
                metrics_port,
                run_worker(
                    settings,
                    concurrency,
                    uuid.UUID(batch) if batch else None,
                    forever,
                    lease_seconds,
                    rpm,
                    tpm,
                ),
            )
        )
    except (RefereeError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
    out.print(
        f"worker judged {progress.done} pairs "
        f"({progress.failed} failed, {progress.discarded} discarded)"
    )
