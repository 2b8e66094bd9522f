"""Compare a pair: judge it in both orders and store every call and the verdict.

This use case owns its transactions rather than running inside the
request's: a model call takes seconds, and holding a database transaction
(and, on SQLite, the write lock) open across it would serialise every
request. So it reads, calls the judge with no transaction open, then writes
everything in one short transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import (
    InvalidInputError,
    JudgeFailedError,
    JudgeUnavailableError,
    UnknownJudgeSpecError,
)
from app.keys import label_key, pair_key
from app.labeling.calls import call_row
from app.labeling.claims import Claimed, LabelClaims
from app.labeling.constitutions import ConstitutionLibrary
from app.labeling.flight import SingleFlight
from app.labeling.inputs import PairIn, check_text_sizes, text_length
from app.labeling.jury import jury_run_rows
from app.labeling.limits import OPERATOR, RequestLimits
from app.labeling.screening import RULE_TEMPLATE, TextPolicy, rule_key, rule_verdict, screen_pair
from app.labeling.templating import prepare
from app.labeling.text_rules import check_judge_fits
from app.observability import metrics
from app.observability.logs import observed_comparison
from app.observability.tracing import record_outcome
from app.settings import Settings
from app.store import comparisons
from app.store.db import Database
from app.store.models import Comparison
from judges import (
    JudgeConfig,
    JudgeConfigError,
    JudgeRegistry,
    MissingCredentialsError,
    ModelUnavailableError,
    Pair,
    PairOutcome,
    judge_pair,
    judge_pair_with_principles,
)
from judges.base import Judge
from judges.cai.constitutions import Constitution
from judges.jury import Jury, JuryConfig, JuryOutcome, PairJudgeConfig, is_jury_spec, run_jury


class _Configurable(Protocol):
    def with_options(self, **options: Any) -> Self: ...


# A judge or a jury configuration: with_limits keeps which one it is.
ConfigT = TypeVar("ConfigT", bound=_Configurable)


@dataclass(frozen=True, slots=True)
class UnderConstitution:
    """Judge under a constitution: ``principles`` of its preference questions, averaged."""

    constitution: Constitution
    principles: int = 1

    @property
    def key(self) -> str:
        """What the label key records: the content-addressed ref and the ensemble size."""
        return f"{self.constitution.ref}|k={self.principles}"


async def judge_comparison(
    judge: Judge | Jury,
    pair: Pair,
    key: str,
    under: UnderConstitution | None,
    slots: asyncio.Semaphore | None = None,
) -> PairOutcome:
    """Judge a pair plainly, or under sampled principles seeded by its label key.

    Seeding by the key makes the principles a pair gets reproducible, while
    different pairs get different ones, as in RL-CAI. A jury's members each
    judge the pair this way, concurrently, and their votes are aggregated.
    """
    if isinstance(judge, Jury):
        return await run_jury(
            judge, lambda member: judge_comparison(member, pair, key, under, slots)
        )
    if under is None:
        return await judge_pair(judge, pair, slots=slots)
    return await judge_pair_with_principles(
        judge, pair, under.constitution, k=under.principles, seed=key, slots=slots
    )


@dataclass(frozen=True, slots=True)
class CompareResult:
    comparison: Comparison
    created: bool
    """False when a stored verdict was reused and no model was called."""


class Labeler:
    """Labeling use cases over one database and one judge registry."""

    def __init__(
        self,
        db: Database,
        registry: JudgeRegistry,
        settings: Settings,
        limits: RequestLimits = OPERATOR,
    ) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.limits = limits
        """Per-request bounds: the API sets RequestLimits.for_clients; the CLI keeps OPERATOR."""
        self.constitutions = ConstitutionLibrary(settings.constitution_folders())
        self.flights = SingleFlight()
        self.claims = LabelClaims(db)

    def resolve(self, spec: str | None) -> JudgeConfig:
        """The judge configuration for a spec or name (or the default); 400 when unknown."""
        chosen = spec
        spec = spec or self.settings.resolved_default_judge()
        if not spec:
            raise UnknownJudgeSpecError(
                "no judge given and REFEREE_DEFAULT_JUDGE is not set; "
                f"name one as provider:model (providers: {', '.join(self.registry.providers)})"
            )
        try:
            config = self.registry.resolve(spec)
        except JudgeConfigError as exc:
            raise UnknownJudgeSpecError(exc.message, known=self.registry.providers) from None
        self.check_choice(chosen, config)
        check_judge_fits(config)
        return config

    def check_choice(self, chosen: str | None, config: PairJudgeConfig) -> None:
        """Apply the request limits to a judge the caller named (the default is the operator's)."""
        if chosen and chosen != self.settings.resolved_default_judge():
            self.limits.check_in_process(config, self.registry.named)
        self.limits.check_jury(config)

    @staticmethod
    def with_limits(config: ConfigT, rpm: float | None = None, tpm: float | None = None) -> ConfigT:
        """The configuration with client-side rate limits (per member of a jury) where given.

        Limits are transport: they never change a label key.
        """
        limits = {k: v for k, v in (("rpm", rpm), ("tpm", tpm)) if v}
        return config.with_options(**limits) if limits else config

    def resolve_pairwise(self, spec: str | None) -> PairJudgeConfig:
        """A judge or a jury (named, or inline ``jury:…``) to judge pairs with; 400 when unknown."""
        spec = spec or self.settings.resolved_default_judge()
        if not spec or not (spec in self.registry.juries or is_jury_spec(spec)):
            return self.resolve(spec)
        try:
            config = self.registry.resolve_pairwise(spec)
        except JudgeConfigError as exc:
            raise UnknownJudgeSpecError(exc.message, known=self.registry.providers) from None
        self.check_choice(spec, config)
        check_judge_fits(config)
        return config

    def pairwise_judge_for(self, config: PairJudgeConfig) -> Judge | Jury:
        """The judge, or the jury with a judge per member, for a configuration."""
        if isinstance(config, JuryConfig):
            return Jury(config, tuple(self.judge_for(member) for member in config.members))
        return self.judge_for(config)

    def holding(self, judge: Judge | Jury) -> AbstractAsyncContextManager[None]:
        """Keep a judge (a jury's members) open while calls on it are in flight.

        Enter it right after :meth:`judge_for` / :meth:`pairwise_judge_for`,
        with no ``await`` in between: the registry may evict and close
        instances nobody holds.
        """
        members = judge.members if isinstance(judge, Jury) else (judge,)
        return self.registry.holding(*members)

    def judge_for(self, config: JudgeConfig) -> Judge:
        try:
            return self.registry.judge(config)
        except MissingCredentialsError as exc:
            raise JudgeUnavailableError(exc.message, env_var=exc.env_var) from None
        except ModelUnavailableError as exc:
            raise JudgeUnavailableError(exc.message, model=config.model) from None
        except JudgeConfigError as exc:
            raise UnknownJudgeSpecError(exc.message) from None

    def check_sizes(self, pair: PairIn) -> None:
        converted = pair.to_pair()
        texts = {
            "prompt": converted.prompt,
            "response_a": converted.response_a,
            "response_b": converted.response_b,
        }
        if converted.reference is not None:
            texts["reference"] = converted.reference
        check_text_sizes(texts, self.settings.max_text_chars)

    def text_policy(self) -> TextPolicy:
        """What the settings say to do with identical responses and empty texts."""
        return TextPolicy(self.settings.identical_responses, self.settings.empty_texts)

    def under(self, constitution: str | None, principles: int = 1) -> UnderConstitution | None:
        """The constitution to judge under, by id; None for the plain pairwise question."""
        if constitution is None:
            return None
        self.limits.check_principles(principles)
        found = self.constitutions.get(constitution)
        if not 1 <= principles <= len(found.principles):
            raise InvalidInputError(
                f"principles must be between 1 and {len(found.principles)} "
                f"(the principles of {found.id!r}), got {principles}",
                field="principles",
            )
        return UnderConstitution(found, principles)

    async def compare(
        self,
        pair: PairIn,
        judge_spec: str | None,
        *,
        force: bool = False,
        under: UnderConstitution | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
    ) -> CompareResult:
        """Judge a pair, or return its stored verdict for the same judge configuration.

        A stored failure is judged again; ``force`` judges again even when a
        verdict exists (the old verdict stays, the new one becomes current).
        ``rpm``/``tpm`` are client-side rate limits on the judge (not part of the label key).
        """
        self.check_sizes(pair)
        decision = screen_pair(pair, self.text_policy())
        config = self.with_limits(self.resolve_pairwise(judge_spec), rpm, tpm)
        pair, config = prepare(pair, config, self.settings.max_criteria_chars)
        judge = self.pairwise_judge_for(config)
        stored = pair.stored()
        if decision == "tie":
            return await self._rule_tie(pair, stored, config, under)
        key = label_key(stored, config, under.key if under else None)
        values = comparison_values(pair, stored, config, key, under)
        async with self.holding(judge):
            result, started = await self.flights.run(
                ("comparison", key, force),
                lambda: self._judge_once(pair, values, config, judge, under, force=force),
            )
        # Callers who joined work in flight were not the ones who paid for it.
        return result if started else CompareResult(result.comparison, created=False)

    async def _judge_once(
        self,
        pair: PairIn,
        values: dict[str, Any],
        config: PairJudgeConfig,
        judge: Judge | Jury,
        under: UnderConstitution | None,
        *,
        force: bool,
    ) -> CompareResult:
        """Lease the label key's row (or get what another process stored), judge, store."""
        async with self.holding(judge):
            claim = await self.claims.claim(values, force=force)
            if not isinstance(claim, Claimed):
                return CompareResult(claim, created=False)
            comparison_id = claim.comparison_id
            async with (
                self.claims.leased(comparison_id),
                observed_comparison(comparison_id, config.label),
            ):
                outcome = await judge_comparison(judge, pair.to_pair(), values["label_key"], under)
                record_outcome(outcome)
                async with self.db.transaction() as session:
                    await write_result(session, comparison_id, pair_lengths(pair), config, outcome)
                    comparison = await comparisons.get(session, comparison_id)
        assert comparison is not None
        if outcome.verdict is None:
            raise JudgeFailedError(
                f"judge {config.label} failed: {outcome.error_class}: {outcome.error_message}",
                comparison_id=str(comparison_id),
                error_class=outcome.error_class,
            )
        return CompareResult(comparison, created=True)

    async def _rule_tie(
        self,
        pair: PairIn,
        stored: dict[str, Any],
        config: PairJudgeConfig,
        under: UnderConstitution | None,
    ) -> CompareResult:
        """Identical responses: a tie by rule, stored once, with no judge call."""
        key = rule_key(stored, config, under.key if under else None)
        async with self.db.transaction() as session:
            existing = await comparisons.get_by_label_key(session, key)
            if existing is None or not existing.verdicts:
                values = comparison_values(pair, stored, config, key, under)
                values["template_version"] = RULE_TEMPLATE
                comparison_id = await comparisons.insert_if_absent(session, values)
                verdict = rule_verdict(pair_lengths(pair))
                run = comparisons.RunRows(comparison_id, verdict, [], "labeled", None)
                await comparisons.write_runs(session, [run])
                metrics.count_verdict(config.label, verdict)
                found = await comparisons.get(session, comparison_id)
                assert found is not None
                return CompareResult(found, created=True)
        return CompareResult(existing, created=False)


def comparison_values(
    pair: PairIn,
    stored: dict[str, Any],
    config: PairJudgeConfig,
    key: str,
    under: UnderConstitution | None = None,
) -> dict[str, Any]:
    return {
        "constitution": under.constitution.ref if under else None,
        "principle_count": under.principles if under else None,
        "label_key": key,
        "pair_key": pair_key(stored["prompt"], stored["response_a"], stored["response_b"]),
        "external_id": pair.id,
        "meta": pair.metadata,
        "judge": config.label,
        "judge_spec": config.spec,
        "judge_config": config.fingerprint(),
        "template_version": config.template,
        **stored,
    }


def pair_lengths(pair: PairIn) -> dict[str, int]:
    converted = pair.to_pair()
    return {
        "length_a": text_length(converted.response_a),
        "length_b": text_length(converted.response_b),
    }


async def write_result(
    session: AsyncSession,
    comparison_id: uuid.UUID,
    lengths: dict[str, int],
    config: PairJudgeConfig,
    outcome: PairOutcome,
) -> Decimal:
    """Add one judging run to a stored comparison; returns its cost in USD."""
    run = run_rows(comparison_id, lengths, config, outcome)
    await comparisons.write_runs(session, [run])
    return run_cost(run)


def run_rows(
    comparison_id: uuid.UUID,
    lengths: dict[str, int],
    config: PairJudgeConfig,
    outcome: PairOutcome,
) -> comparisons.RunRows:
    """The rows one judging run adds: its calls, and a verdict or the failure status.

    A jury's run adds its verdict and every member's vote with its calls.
    """
    verdict = outcome.verdict
    values = (
        None
        if verdict is None
        else {
            "winner": verdict.winner.value,
            "confidence": verdict.confidence,
            "position_consistent": verdict.position_consistent,
            "soft_preference": verdict.soft_preference,
            "rationale": verdict.rationale,
            "principles": outcome.extra.get("per_principle"),
            **lengths,
        }
    )
    metrics.count_verdict(config.label, values)  # every judged verdict's row is built here
    if isinstance(outcome, JuryOutcome):
        return jury_run_rows(comparison_id, values, outcome)
    assert isinstance(config, JudgeConfig)  # a jury's outcome is a JuryOutcome
    return comparisons.RunRows(
        comparison_id=comparison_id,
        verdict=values,
        calls=[
            {"comparison_id": comparison_id, **call_row(config, call)} for call in outcome.calls
        ],
        status="labeled" if verdict is not None else "failed",
        error_class=outcome.error_class,
    )


def run_cost(run: comparisons.RunRows) -> Decimal:
    """USD the run's calls (a jury's: its members') cost; unpriced calls count as zero."""
    calls = [*run.calls, *(call for vote in run.votes for call in vote.calls)]
    return sum((c["cost_usd"] for c in calls if c["cost_usd"] is not None), Decimal(0))
