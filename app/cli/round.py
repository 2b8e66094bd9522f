"""``referee round``: run an RLAIF round (generate → judge → select → head-to-head), list, show."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.console import JudgeOption, RejectPrinter, err, fail, load_settings, out, run_or_fail
from app.cli.label import MetricsPortOption

if TYPE_CHECKING:
    from app.labeling.rounds.round_run import RoundSummary

round_cli = typer.Typer(
    help="RLAIF rounds: sample from the policy, judge, select chosen/rejected, compare with "
    "the parent round.",
    no_args_is_help=True,
)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@round_cli.command("run")
def round_run(
    name: Annotated[str, typer.Argument(help="The round's name; the same name resumes it.")],
    prompts: Annotated[
        str, typer.Option(help="JSONL (or .jsonl.gz, or a JSON array) of prompts; - for stdin.")
    ],
    policy: Annotated[
        str, typer.Option(help="The policy to sample: openai:MODEL, anthropic:MODEL, local:PATH.")
    ],
    judge: JudgeOption = None,
    n: Annotated[int, typer.Option("-n", min=1, help="Samples per prompt.")] = 4,
    strategy: Annotated[
        str, typer.Option(help="best-vs-worst, all-pairs or tournament.")
    ] = "best-vs-worst",
    checkpoint: Annotated[
        str | None, typer.Option(help="Your label for the policy's weights (step-2000).")
    ] = None,
    parent: Annotated[
        str | None, typer.Option(help="The previous round: compared with this one.")
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Nucleus sampling.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Tokens per sample at most.")] = 1024,
    seed: Annotated[
        int | None, typer.Option(help="Sampling seed, where the API takes one.")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="Skip a prompt whose best and worst are closer than this.")
    ] = None,
    budget: Annotated[
        int | None, typer.Option(min=1, help="tournament: pairs judged per prompt.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Model requests in flight.")] = 16,
    rpm: Annotated[
        float | None,
        typer.Option(min=0.0, help="Client-side limit, requests/minute (policy and judge)."),
    ] = None,
    tpm: Annotated[
        float | None,
        typer.Option(min=0.0, help="Client-side limit, tokens/minute (policy and judge)."),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(min=0.0, help="Stop sampling once this run has spent this many USD."),
    ] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Run one RLAIF round: sample, judge, select chosen/rejected, compare with the parent.

    The policy samples N answers per prompt; the judge rates them
    (best-vs-worst) or compares them (all-pairs, tournament) and the
    strategy picks chosen and rejected per prompt. With --parent, this
    round's answers meet the parent round's on the prompts both sampled,
    judged in both orders, for `referee report --rounds`. Killed or
    interrupted, the same command resumes and repeats nothing; the same name
    with other parameters is refused (--concurrency, --rpm, --tpm and
    --max-cost may change between runs). --max-cost bounds what this run
    spends sampling: reached, the round stops before judging, and a re-run
    continues it. Then `referee export dpo --round NAME`.

    Examples:

      referee round run r1 --prompts prompts.jsonl --policy openai:my-policy --checkpoint sft \\
        --judge openai:gpt-4o-mini -n 4 --strategy best-vs-worst --rpm 500 --max-cost 5

      referee round run r2 --prompts prompts.jsonl --policy openai:my-policy \\
        --checkpoint dpo-r1 --judge openai:gpt-4o-mini -n 4 --parent r1
    """
    from app.labeling.jsonl import open_input, read_records
    from app.labeling.metrics_serving import observed
    from app.labeling.rounds.generation_jobs import GenerationPromptIn
    from app.labeling.rounds.round_run import (
        RoundSpec,
        RoundTransport,
        RoundViews,
        plan_round,
        run_round,
    )
    from app.labeling.runtime import runtime

    spec = RoundSpec(
        name=name,
        policy=policy,
        judge=judge or "",
        n=n,
        strategy=strategy,
        checkpoint=checkpoint,
        parent=parent,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        margin=margin,
        budget=budget,
    )
    if not judge:
        fail("--judge is required (or set REFEREE_DEFAULT_JUDGE)")
    transport = RoundTransport(
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        max_cost=Decimal(str(max_cost)) if max_cost is not None else None,
    )
    source = "<stdin>" if prompts == "-" else str(Path(prompts).resolve())
    printer = RejectPrinter()

    async def run() -> RoundSummary:
        async with runtime(settings) as labeler:
            with open_input(prompts) as stream:
                records = list(read_records(stream, prompts, GenerationPromptIn))
            plan = plan_round(labeler, spec, records, source)
            views = RoundViews(on_stage=_stage, on_reject=printer)
            return await run_round(labeler, plan, transport, views)

    settings = load_settings()
    summary = run_or_fail(observed(settings, metrics_port, run(), policy=policy), prompts)
    printer.finish()
    _print_summary(summary)
    if printer.count or summary.stage != "done":
        raise typer.Exit(1)


def _stage(stage: str) -> None:
    err.print(f"{stage}…")


def _print_summary(summary: RoundSummary) -> None:
    samples = ", ".join(f"{k} {v}" for k, v in sorted(summary.generated.items())) or "none"
    decisions = ", ".join(f"{k} {v}" for k, v in sorted(summary.selected.items())) or "none"
    out.print(f"round {summary.name}: {summary.stage}")
    out.print(f"  samples     {samples}")
    out.print(f"  decisions   {decisions}")
    compare = summary.compare
    if compare is not None:
        progress = compare.progress
        out.print(
            f"  vs parent   {compare.shared} shared prompts; judged now {progress.labeled}, "
            f"failed {progress.failed}; {len(compare.skipped)} skipped"
        )
    if summary.stop_reason:
        err.print(f"stopped: {summary.stop_reason}; run the same command again to resume")


@round_cli.command("list")
def round_list(
    as_json: bool = typer.Option(False, "--json", help="Print the rounds as JSON."),
) -> None:
    """Every round, oldest first: policy, checkpoint, strategy, judge, parent and stage.

    Examples:

      referee round list
    """
    from app.labeling.rounds.round_info import list_rounds
    from app.labeling.runtime import runtime

    async def run() -> list[dict[str, Any]]:
        async with runtime(load_settings()) as labeler:
            return await list_rounds(labeler, limit=10_000)

    found = run_or_fail(run(), "the database")
    if as_json:
        typer.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in found], indent=2))
        return
    if not found:
        out.print("no rounds yet: run one with `referee round run NAME …`")
    for item in found:
        checkpoint = f" @ {item['checkpoint']}" if item["checkpoint"] else ""
        parent = f", parent {item['parent']}" if item["parent"] else ""
        out.print(
            f"{item['name']}: {item['policy']}{checkpoint}, {item['prompt_count']} prompts, "
            f"{item['strategy']} by {item['judge']}{parent} ({item['stage']})"
        )


@round_cli.command("show")
def round_show(
    name: str = typer.Argument(help="The round's name."),
    as_json: bool = typer.Option(False, "--json", help="Print the round as JSON."),
) -> None:
    """One round: its parameters, lineage and progress (samples, decisions, head-to-head).

    Examples:

      referee round show r2 --json
    """
    from app.labeling.rounds.round_info import describe_round
    from app.labeling.runtime import runtime

    async def run() -> dict[str, Any]:
        async with runtime(load_settings()) as labeler:
            return await describe_round(labeler, name)

    found = run_or_fail(run(), "the database")
    if as_json:
        typer.echo(json.dumps({k: _plain(v) for k, v in found.items()}, indent=2))
        return
    checkpoint = f" @ {found['checkpoint']}" if found["checkpoint"] else ""
    out.print(f"round {found['name']} ({found['stage']})")
    out.print(f"  policy      {found['policy']}{checkpoint}")
    out.print(
        f"  prompts     {found['prompt_count']} from {found['prompts_source']} "
        f"(set {found['prompt_set_key'][:12]})"
    )
    out.print(f"  strategy    {found['strategy']}, judge {found['judge']}")
    out.print(f"  lineage     {' ← '.join(found['lineage'])}")
    for title, key in (
        ("samples", "samples"),
        ("decisions", "selections"),
        ("vs parent", "head_to_head"),
    ):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(found[key].items())) or "none yet"
        out.print(f"  {title:<11} {counts}")
