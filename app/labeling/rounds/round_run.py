"""``referee round run`` and ``POST /v1/rounds``: generate → judge → select (→ head-to-head).

One resumable job per round name. The round row is stored first with every
parameter that defines its data (``params``); each stage then resumes from
what the database holds, through the same keys the stages use on their own:

1. **generate**: the policy samples ``n`` answers per prompt into the
   generation ``round:NAME`` (each (prompt, sample index) claimed under a
   lease, so nothing is sampled twice);
2. **select**: the strategy's judgments and decisions over that generation
   (label keys and one decision per prompt);
3. **compare** (a round with a parent): this round's answer against the
   parent's on every prompt both sampled, judged in both orders by the
   round's judge (app.labeling.rounds.round_compare);
4. **done**.

Killed at any point and run again with the same name and parameters, it
continues where the database says it is and duplicates nothing. The same
name with other parameters is refused, naming what differs: a round name
means one set of labels. How fast and how far a run goes
(:class:`RoundTransport`: concurrency, ``rpm``/``tpm``, ``max_cost``) is not
part of that: it may change from one run to the next.

``max_cost`` bounds what this run spends *sampling* (the generation stage,
priced per sample as ``referee generate --max-cost`` does): once reached,
the policy is asked for nothing more, the samples in flight are stored, and
the round stops before judging. The judging stages (select, head-to-head)
are not bounded by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from app.errors import InvalidInputError, NotFoundError, RefereeError
from app.labeling.batch import Progress, release_dead_local_leases
from app.labeling.compare import Labeler
from app.labeling.jsonl import LineError, Parsed
from app.labeling.rounds.generate import GenerationProgress, GeneratorOptions
from app.labeling.rounds.generation_jobs import (
    GenerationPromptIn,
    GenerationSpec,
    PromptScreen,
    build_policy,
    finish,
    open_generation,
    policy_settings,
    sample,
)
from app.labeling.rounds.round_compare import CompareSummary, judge_matchups, queue_matchups
from app.labeling.rounds.select import SelectOptions, select_preferences
from app.labeling.worker import WorkerOptions
from app.store import generation as generations
from app.store import rounds
from app.store.models_rounds import Round
from judges.jury import PairJudgeConfig
from judges.policies.base import PolicyConfig


class RoundConflictError(RefereeError):
    """A round of this name exists with other parameters."""

    status_code = 409
    code = "round_conflict"


@dataclass(frozen=True, slots=True)
class RoundSpec:
    """What defines a round's data. Two runs of one name must agree on all of it."""

    name: str
    policy: str
    judge: str
    n: int = 4
    strategy: str = "best-vs-worst"
    checkpoint: str | None = None
    parent: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    margin: float | None = None
    """best-vs-worst: skip a prompt whose best and worst scores are closer than this."""
    budget: int | None = None
    """tournament: pairwise judgments per prompt."""


@dataclass(frozen=True, slots=True)
class RoundTransport:
    """How fast and how far a run may go; never part of a round's identity."""

    concurrency: int = 16
    """Model requests in flight, in every stage."""
    rpm: float | None = None
    """Client-side requests/minute, on the policy and on the judge (each its own limiter)."""
    tpm: float | None = None
    """Client-side tokens/minute, on the policy and on the judge."""
    max_cost: Decimal | None = None
    """USD this run may spend sampling (the generation stage); see run_round."""

    def judge(self, config: PairJudgeConfig) -> PairJudgeConfig:
        """The round's judge with this run's rate limits (never part of a label key)."""
        return Labeler.with_limits(config, self.rpm, self.tpm)

    def policy(self, config: PolicyConfig) -> PolicyConfig:
        """The round's policy with this run's rate limits (not stored with the round)."""
        return replace(config, rpm=self.rpm or config.rpm, tpm=self.tpm or config.tpm)


@dataclass
class RoundSummary:
    name: str = ""
    stage: str = "generate"
    created: bool = False
    generated: dict[str, int] = field(default_factory=dict)
    selected: dict[str, int] = field(default_factory=dict)
    compare: CompareSummary | None = None
    stop_reason: str | None = None


def prompt_set_key(prompt_keys: Sequence[str]) -> str:
    """One key for a prompt set: SHA-256 over its distinct prompt keys, sorted."""
    return hashlib.sha256("\n".join(sorted(set(prompt_keys))).encode()).hexdigest()


def round_params(
    spec: RoundSpec, policy_fingerprint: Any, config: PairJudgeConfig, prompt_set: str
) -> dict[str, Any]:
    """The stored ``params``: what a re-run under the same name must match."""
    values = asdict(spec)
    values.pop("name")
    values["policy_config"] = policy_fingerprint
    values["judge_config"] = config.fingerprint()
    values["prompt_set"] = prompt_set
    return values


def differences(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """``field: stored → asked`` for every parameter that differs."""
    names = sorted(stored.keys() | asked.keys())
    return [
        f"{name}: {_shown(name, stored.get(name))} → {_shown(name, asked.get(name))}"
        for name in names
        if stored.get(name) != asked.get(name)
    ]


def _shown(name: str, value: Any) -> str:
    if name == "prompt_set" and isinstance(value, str):
        return f"prompt set {value[:12]}"
    if isinstance(value, dict):
        return "(another configuration)"
    return repr(value)


async def open_round(
    labeler: Labeler,
    spec: RoundSpec,
    params: dict[str, Any],
    judge_label: str,
    source: str,
    prompt_count: int,
    api_key_id: int | None = None,
) -> tuple[Round, bool]:
    """The round named ``spec.name``: created now, or the stored one when its params match."""
    async with labeler.db.transaction() as session:
        parent_id = None
        if spec.parent is not None:
            if spec.parent == spec.name:
                raise InvalidInputError("a round cannot be its own parent", field="parent")
            parent = await rounds.get_by_name(session, spec.parent)
            if parent is None:
                raise NotFoundError(f"no parent round named {spec.parent!r}", field="parent")
            parent_id = parent.id
        existing = await rounds.get_by_name(session, spec.name)
        created = existing is None
        if existing is None:
            existing = await rounds.create_if_absent(
                session,
                {
                    "name": spec.name,
                    "parent_id": parent_id,
                    "policy": spec.policy,
                    "checkpoint": spec.checkpoint,
                    "prompts_source": source,
                    "prompt_set_key": params["prompt_set"],
                    "prompt_count": prompt_count,
                    "strategy": spec.strategy,
                    "judge": judge_label,
                    "params": params,
                    "stage": "generate",
                    "api_key_id": api_key_id,
                },
            )
    if existing.params != params:
        changed = differences(existing.params, params)
        raise RoundConflictError(
            f"round {spec.name!r} exists with other parameters ({'; '.join(changed)}); "
            "run it again with the parameters it was made with to resume it, "
            "or give the new round another name",
            field="name",
            differences=changed,
        )
    return existing, created


async def compare_with_parent(
    labeler: Labeler,
    found: Round,
    config: PairJudgeConfig,
    transport: RoundTransport,
    on_progress: Callable[[Progress], None] = lambda _p: None,
) -> CompareSummary | None:
    """Queue and judge the head-to-head against the parent; None for a round without one."""
    if found.parent_id is None:
        return None
    async with labeler.db.transaction() as session:
        parent = await rounds.get(session, found.parent_id)
        current = await rounds.get(session, found.id)
    assert parent is not None
    assert current is not None
    if parent.generation_id is None:
        summary = CompareSummary()
        summary.skipped.append(f"parent round {parent.name!r} has sampled nothing yet")
        return summary
    batch_id, summary = await queue_matchups(labeler, current, parent, config)
    options = WorkerOptions(concurrency=transport.concurrency)
    judge = transport.judge(config)
    summary.progress = await judge_matchups(labeler, batch_id, judge, options, on_progress)
    return summary


@dataclass
class RoundViews:
    """Progress callbacks of a run, one per stage (the CLI draws them; the API ignores them)."""

    on_stage: Callable[[str], None] = lambda _stage: None
    on_generated: Callable[[GenerationProgress], None] = lambda _p: None
    on_decided: Callable[[], None] = lambda: None
    on_compared: Callable[[Progress], None] = lambda _p: None
    on_reject: Callable[[LineError], None] = lambda _e: None


@dataclass
class RoundPlan:
    """A round checked and ready to run: nothing has been stored or paid for yet."""

    spec: RoundSpec
    source: str
    generation: GenerationSpec
    policy_config: PolicyConfig
    judge: PairJudgeConfig
    rows: list[dict[str, Any]]
    """The good prompts, as the generation stores them."""
    rejected: list[LineError]
    params: dict[str, Any]


def plan_round(
    labeler: Labeler,
    spec: RoundSpec,
    records: Iterable[Parsed[GenerationPromptIn] | LineError],
    source: str,
) -> RoundPlan:
    """Check everything a round needs before anything is stored: options, policy, judge, prompts.

    A bad prompt is a reject naming its line; the others go on. A missing
    key, an unknown provider or strategy, or a file without one good prompt
    is an error here, before any model is called.
    """
    check_name(spec.name, "name")
    if spec.parent is not None:
        check_name(spec.parent, "parent")
    select_options(spec).check(spec.strategy)
    generation = GenerationSpec(
        policy=spec.policy,
        n=spec.n,
        checkpoint=spec.checkpoint,
        temperature=1.0 if spec.temperature is None else spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens or DEFAULT_MAX_TOKENS,
        seed=spec.seed,
        name=f"round:{spec.name}",
    )
    policy_config = policy_settings(generation)
    judge = _judge_config(labeler, spec)
    screen = PromptScreen(source, labeler.settings.max_text_chars)
    rows: list[dict[str, Any]] = []
    rejected: list[LineError] = []
    for record in records:
        checked = screen.check(record)
        if isinstance(checked, LineError):
            rejected.append(checked)
        elif checked:
            rows.append(checked)
    if not rows:
        raise InvalidInputError(
            f"{source}: no valid prompt ({len(rejected)} rejected lines)", field="prompts"
        )
    key = prompt_set_key([row["prompt_key"] for row in rows])
    params = round_params(spec, policy_config.provenance(), judge, key)
    return RoundPlan(spec, source, generation, policy_config, judge, rows, rejected, params)


DEFAULT_MAX_TOKENS = 1024
MAX_ROUND_NAME = 200
"""Room for the generation (``round:NAME``) and head-to-head batch names within their columns."""


def check_name(name: str, field_name: str) -> None:
    """A round name: 1 to MAX_ROUND_NAME printable characters."""
    if not 0 < len(name) <= MAX_ROUND_NAME or not name.isprintable():
        raise InvalidInputError(
            f"a round {field_name} is 1 to {MAX_ROUND_NAME} printable characters, got {name!r}",
            field=field_name,
        )


def select_options(spec: RoundSpec, transport: RoundTransport | None = None) -> SelectOptions:
    transport = transport or RoundTransport()
    return SelectOptions(
        margin=spec.margin,
        budget=spec.budget,
        concurrency=transport.concurrency,
        rpm=transport.rpm,
        tpm=transport.tpm,
    )


def _judge_config(labeler: Labeler, spec: RoundSpec) -> PairJudgeConfig:
    """The round's judge: a rating judge for best-vs-worst, a pairwise one (or jury) otherwise.

    Built here so that a missing key fails before the policy samples anything.
    """
    if spec.strategy == "best-vs-worst":
        config = labeler.resolve(spec.judge)
        labeler.judge_for(config)
        return config
    pairwise = labeler.resolve_pairwise(spec.judge)
    labeler.pairwise_judge_for(pairwise)
    return pairwise


async def run_round(
    labeler: Labeler,
    plan: RoundPlan,
    transport: RoundTransport,
    views: RoundViews | None = None,
    api_key_id: int | None = None,
) -> RoundSummary:
    """Run (or resume) the round: generate, select, compare with the parent; see the module."""
    views = views or RoundViews()
    spec = plan.spec
    for error in plan.rejected:
        views.on_reject(error)
    found, created = await open_round(
        labeler, spec, plan.params, plan.judge.label, plan.source, len(plan.rows), api_key_id
    )
    summary = RoundSummary(name=spec.name, created=created)
    views.on_stage("generate")
    generated, stopped = await _generate(labeler, plan, found, transport, views, api_key_id)
    summary.generated = generated
    if generated.get("pending") or stopped:
        # Stopped by --max-cost (or with samples pending): nothing is judged this run.
        summary.stop_reason = stopped or "sampling stopped with samples pending"
        return summary
    views.on_stage("select")
    await _set_stage(labeler, found, "select")
    # Judgments a killed run had leased would otherwise wait out their leases.
    await release_dead_local_leases(labeler)
    assert found.generation_id is not None
    selected = await select_preferences(
        labeler,
        found.generation_id,
        spec.strategy,
        spec.judge,
        select_options(spec, transport),
        views.on_decided,
    )
    summary.selected = selected.outcomes
    async with labeler.db.transaction() as session:
        await rounds.update_round(session, found.id, selection_run_id=selected.run_id)
    views.on_stage("compare")
    await _set_stage(labeler, found, "compare")
    summary.compare = await compare_with_parent(
        labeler, found, plan.judge, transport, views.on_compared
    )
    await _set_stage(labeler, found, "done")
    summary.stage = "done"
    return summary


async def _generate(
    labeler: Labeler,
    plan: RoundPlan,
    found: Round,
    transport: RoundTransport,
    views: RoundViews,
    api_key_id: int | None,
) -> tuple[dict[str, int], str | None]:
    """The generation step: store the prompts with their samples, draw what is pending.

    Returns the samples by status and why sampling stopped early (the budget), if it did.
    """
    db = labeler.db
    policy = build_policy(transport.policy(plan.policy_config))
    try:
        generation = await open_generation(
            db, plan.generation, plan.policy_config, plan.source, api_key_id
        )
        found.generation_id = generation.id
        async with db.transaction() as session:
            await rounds.update_round(session, found.id, generation_id=generation.id)
            new = 0
            for start in range(0, len(plan.rows), 500):
                chunk = plan.rows[start : start + 500]
                new += await generations.add_prompts(session, generation, chunk)
            await generations.add_counts(session, generation.id, new, 0)
        options = GeneratorOptions(concurrency=transport.concurrency, max_cost=transport.max_cost)
        generator = await sample(db, generation, policy, options, views.on_generated)
        progress = await generator.run()
        return await finish(db, generation), progress.stop_reason
    finally:
        await policy.aclose()


async def _set_stage(labeler: Labeler, found: Round, stage: str) -> None:
    async with labeler.db.transaction() as session:
        await rounds.update_round(session, found.id, stage=stage)
    found.stage = stage
