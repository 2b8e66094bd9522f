"""``referee generate``: sample on-policy candidates for a file of prompts."""

from __future__ import annotations

import asyncio
import gc
import json
import time
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

from app.cli.console import RejectPrinter, err, fail, load_settings, out, run_fast
from app.cli.label import MetricsPortOption
from app.errors import RefereeError
from app.labeling.heap import SERVING_THRESHOLDS
from app.labeling.jsonl import open_input

if TYPE_CHECKING:
    from app.labeling.rounds.generate import GenerationProgress
    from app.labeling.rounds.generation_files import GenerateEstimate, GenerateSummary


def generate(
    file: Annotated[
        str,
        typer.Argument(help='JSONL of prompts {"id"?, "prompt", "metadata"?}; - for stdin.'),
    ],
    policy: Annotated[
        str,
        typer.Option(
            "--policy", "-p", help="openai:<model> (with --base-url for vLLM), anthropic:…, local:…"
        ),
    ],
    n: Annotated[int, typer.Option("-n", min=1, help="Samples per prompt.")] = 4,
    checkpoint: Annotated[
        str | None, typer.Option(help="Your label for the policy's weights (stored).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible server (vLLM, …).")
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Nucleus sampling.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per sample at most.")] = 1024,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=2**30, help="Base seed; a request's is this plus its first index."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Model requests in flight.")] = 32,
    rpm: Annotated[float | None, typer.Option(help="Client-side limit, requests/minute.")] = None,
    tpm: Annotated[float | None, typer.Option(help="Client-side limit, tokens/minute.")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Draw the failed samples again.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Estimate requests, tokens and cost; send nothing.")
    ] = False,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop cleanly once this many USD are spent.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Generation name (default: file, policy, parameters).")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="live (requests as they go) or provider-batch (the providers' batch APIs, "
            "half price, results within 24 h)."
        ),
    ] = "live",
    poll_interval: Annotated[
        float, typer.Option(min=0.01, help="With provider-batch: seconds between status checks.")
    ] = 30.0,
    rejects: Annotated[
        Path | None, typer.Option(help="Where bad lines go (default: FILE.rejects.jsonl).")
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Sample n answers per prompt from a policy and store each with its provenance.

    Identical answers to a prompt are stored once with a count; a failed
    sample stores its error, never a text. Killed or interrupted, the same
    command resumes: each (prompt, sample index) is drawn exactly once.
    Bad lines are reported as FILE:LINE with the field and written to a
    rejects file; the exit code is 1 if any line was rejected or any
    sample failed.

    Examples:

      referee generate prompts.jsonl --policy openai:my-sft --base-url http://gpu:8000/v1 -n 8

      referee generate prompts.jsonl --policy anthropic:claude-haiku-4-5 -n 4 --max-cost 5

      referee generate prompts.jsonl --policy local:./checkpoints/step-2000 --checkpoint step-2000

      referee generate prompts.jsonl --policy openai:gpt-4o-mini -n 4 --dry-run

      referee generate prompts.jsonl --policy openai:gpt-4o-mini -n 8 --mode provider-batch

      referee generate prompts.jsonl --policy openai:gpt-4o-mini -n 8 --metrics-port 9102
    """
    from app.labeling.metrics_serving import observed
    from app.labeling.rounds.generation_files import GenerateOptions, estimate, generate_stream
    from app.labeling.rounds.generation_jobs import GenerationSpec

    settings = load_settings()
    source = "<stdin>" if file == "-" else file
    options_of_policy: dict[str, object] = {"rpm": rpm, "tpm": tpm}
    if base_url is not None:
        options_of_policy["base_url"] = base_url
    spec = GenerationSpec(
        policy=policy,
        n=n,
        checkpoint=checkpoint,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        policy_options={k: v for k, v in options_of_policy.items() if v is not None},
        name=name,
    )
    budget = Decimal(str(max_cost)) if max_cost is not None else None
    batch_mode = None
    if mode != "live":  # imported only then: provider-batch mode loads both SDKs
        from app.labeling.provider_batch import provider_batch_options

        try:
            batch_mode = provider_batch_options(mode, poll_interval, concurrency, budget)
        except RefereeError as exc:
            fail(exc.message)
    options = GenerateOptions(
        concurrency=concurrency,
        max_cost=budget,
        retry_failed=retry_failed,
        rejects_path=rejects or Path(("stdin" if file == "-" else file) + ".rejects.jsonl"),
        origin="<stdin>" if file == "-" else str(Path(file).resolve()),
        provider_batch=batch_mode,
    )
    try:
        stream = open_input(file)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    with stream:
        try:
            if dry_run:
                printer = RejectPrinter()
                result = asyncio.run(estimate(settings, stream, source, spec, options, printer))
                printer.finish()
                print_estimate(result)
                if result.rejected:
                    raise typer.Exit(1)
                return
            printer = RejectPrinter(where=str(options.rejects_path))
            work = generate_stream(settings, stream, source, spec, options, progress_view, printer)
            summary = run_fast(observed(settings, metrics_port, work, policy=spec.policy))
            printer.finish()
        except RefereeError as exc:
            fail(exc.message)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
    print_summary(summary)
    if summary.rejected or summary.status_counts.get("failed"):
        raise typer.Exit(1)


@contextmanager
def progress_view(total: int) -> Iterator[Callable[[GenerationProgress], None]]:
    """A progress bar with rate, ETA, tokens and cost so far.

    ``total`` is what is known to be pending at the start; it grows while the
    prompts are still being stored (sampling starts on the first chunk).
    """
    columns = (
        TextColumn("sampling"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}", markup=False),
        TimeRemainingColumn(),
        TextColumn("{task.fields[tokens]} tok  ${task.fields[cost]}", markup=False),
    )
    # Sampling starts now: what start-up built (modules, the SDK's types) lives to the end.
    # Frozen, the collector no longer walks it on every full collection, nor at exit.
    gc.freeze()
    # 256 requests in flight keep their SDK objects alive for a model call's latency: at
    # the default 700 new objects the youngest generation was scanned (and promoted) again
    # and again; at 50,000 far fewer times (as the server does, app/labeling/heap.py).
    gc.set_threshold(*SERVING_THRESHOLDS)
    started = time.monotonic()
    # Redrawn 4 times a second (rich's default is 10): its thread takes the GIL from the loop.
    with RichProgress(*columns, console=err, transient=False, refresh_per_second=4) as bar:
        task = bar.add_task("sampling", total=total, rate="", tokens=0, cost="0.00")

        def update(p: GenerationProgress) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(
                task,
                total=max(p.total, total),
                completed=p.done,
                rate=f"{p.done / elapsed:.1f} samples/s",
                tokens=p.input_tokens + p.output_tokens,
                cost=f"{p.cost:.4f}",
            )

        yield update


def _usd(cost: Decimal | None) -> str:
    return f"${cost:.4f}" if cost is not None else "unknown (model not in the price table)"


def print_estimate(result: GenerateEstimate) -> None:
    out.print(
        f"dry run: {result.prompts} prompts, {result.samples} samples in {result.requests} "
        f"requests, ~{result.input_tokens} input + at most {result.max_output_tokens} output "
        f"tokens; {result.rejected} lines would be rejected, {result.merged} repeated prompts "
        f"merged, {result.stored} samples already drawn\n"
        f"cost at most {_usd(result.cost)} (every sample at --max-tokens"
        f"{', at the provider-batch rates' if result.batch else ''})"
    )


def print_summary(summary: GenerateSummary) -> None:
    p, counts = summary.progress, summary.status_counts
    failures = ", ".join(f"{k} {v}" for k, v in sorted(p.failures.items()))
    out.print(
        f"generation {summary.generation_id} ({json.dumps(summary.name)}): "
        f"{counts.get('done', 0)} samples, {summary.candidates} distinct candidates, "
        f"{counts.get('failed', 0)} failed{f' ({failures})' if failures else ''}, "
        f"{counts.get('pending', 0)} pending, {summary.rejected} rejected lines, "
        f"{summary.merged} repeated prompts merged; this run drew {p.done} samples in "
        f"{p.requests} requests in {p.elapsed_s:.1f} s "
        f"({p.done / p.elapsed_s if p.elapsed_s else 0:.1f} samples/s), "
        f"{p.input_tokens + p.output_tokens} tokens, ${p.cost:.4f}",
        markup=False,
    )
    if p.stop_reason:
        err.print(f"stopped: {p.stop_reason}. Run the same command again to resume.")
    if counts.get("failed"):
        err.print("re-run with --retry-failed to draw the failed samples again")
