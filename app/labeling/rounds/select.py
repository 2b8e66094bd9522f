"""From a generation's candidates to one preference per prompt, by a named strategy.

Entry point: :func:`select_preferences` (used by ``referee select`` and by
rounds after generation). The judgments go through the existing use cases,
so they are ordinary stored labels that reports and exports see:

- ``all-pairs`` and ``tournament`` judge pairs with
  :meth:`Labeler.compare <app.labeling.compare.Labeler.compare>` (both
  orders, position bias caught, keyed by content);
- ``best-vs-worst`` rates each candidate with
  :class:`~app.labeling.rate.Rater` (a rubric judge, or a ``local:`` reward
  model through the same rating call).

What is decided from them is in :mod:`.strategies`; each decision is one
``selections`` row (:mod:`app.store.selection` reads them back).

Resumable: the run is keyed by (generation, strategy, judge configuration,
options), so the same call again finds the same run. Prompts decided
already are left as they are; the others are decided again, and every
judgment stored before the interruption is reused through its label key
with no model call. A prompt is decided at most once; the exception is a
prompt skipped because a judge call failed, which a re-run tries again
(a failure is never turned into a preference).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.errors import (
    InvalidInputError,
    JudgeFailedError,
    NotFoundError,
    TextTooLargeError,
)
from app.keys import KEY_SCHEMA_VERSION, document_key
from app.labeling.compare import Labeler
from app.labeling.inputs import PairIn
from app.labeling.rate import Rater, ResponseItemIn, RubricChoice
from app.labeling.rounds import strategies
from app.labeling.rounds.bradley_terry import fit, votes
from app.labeling.rounds.strategies import Decision, PairVerdict, StrategyName
from app.store import generation as generations
from app.store import selection as store
from app.store.generation import PromptCandidates
from judges.jury import PairJudgeConfig

DEFAULT_MARGIN = 1.0
"""all-pairs: one win; best-vs-worst: one rating point."""
DEFAULT_CONFIDENCE = 0.95
PAGE_PROMPTS = 500
"""Prompts read (with their candidates) and decided per page."""


@dataclass(frozen=True, slots=True)
class SelectOptions:
    """How a strategy decides; all but ``concurrency``, ``rpm``, ``tpm`` is in the run's key."""

    margin: float | None = None
    """all-pairs (wins) and best-vs-worst (rating points): skip below it; default 1."""
    budget: int | None = None
    """tournament: pairs judged per prompt (each in both orders); default 2n, at most all."""
    confidence: float = DEFAULT_CONFIDENCE
    """tournament: the posterior probability top ≻ bottom needed to select."""
    seed: int = 0
    """tournament: seeds the pair sampling (per prompt, with its prompt key)."""
    rubric: RubricChoice = field(default_factory=RubricChoice)
    """best-vs-worst: the rubric the candidates are rated on."""
    concurrency: int = 16
    """Judgments (comparisons or ratings) in flight."""
    rpm: float | None = None
    """Client-side requests/minute on the judge (transport: no key changes)."""
    tpm: float | None = None
    """Client-side tokens/minute on the judge."""

    def check(self, strategy: str) -> None:
        if strategy not in strategies.STRATEGIES:
            raise InvalidInputError(
                f"unknown strategy {strategy!r}: use one of {', '.join(strategies.STRATEGIES)}",
                field="strategy",
            )
        if self.margin is not None and not self.margin > 0:
            raise InvalidInputError("margin must be above 0", field="margin")
        if self.budget is not None and self.budget < 1:
            raise InvalidInputError("budget must be at least 1 pair", field="budget")
        if not 0.5 < self.confidence < 1:
            raise InvalidInputError("confidence must be between 0.5 and 1", field="confidence")
        if self.concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1", field="concurrency")

    def key_document(self, strategy: str) -> dict[str, Any]:
        """The options the strategy's decisions depend on (what makes it another run)."""
        if strategy == "tournament":
            return {"budget": self.budget, "confidence": self.confidence, "seed": self.seed}
        found: dict[str, Any] = {"margin": self.margin or DEFAULT_MARGIN}
        if strategy == "best-vs-worst":
            rubric = self.rubric.resolve()
            found.update(rubric=rubric.version, threshold=rubric.threshold)
        return found


@dataclass(slots=True)
class SelectSummary:
    """What a selection run did: its id, the decisions by outcome, the judging it paid for."""

    run_id: uuid.UUID
    generation_id: uuid.UUID
    strategy: str
    judge: str
    prompts: int
    outcomes: dict[str, int]
    """Every decision of the run by outcome: ``selected`` or a skip reason."""
    decided_now: int = 0
    judged: int = 0
    """Comparisons or ratings this call paid a model for."""
    reused: int = 0
    """Comparisons or ratings found stored (resumed work, or shared with other runs)."""
    done: bool = False

    @property
    def selected(self) -> int:
        return self.outcomes.get("selected", 0)


@dataclass(slots=True)
class Evidence:
    """A prompt's judgments as they come back: ids for the audit trail, failures kept."""

    judgments: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    judged: int = 0
    reused: int = 0


async def select_preferences(
    labeler: Labeler,
    generation: str | uuid.UUID,
    strategy: str,
    judge_spec: str | None,
    options: SelectOptions | None = None,
    on_decided: Callable[[], None] | None = None,
) -> SelectSummary:
    """Decide chosen and rejected for every prompt of a generation; resume a stopped run.

    ``generation`` is its id or name; it must have no sample pending.
    ``judge_spec`` names a pairwise judge or jury (all-pairs, tournament) or
    a rating judge (best-vs-worst). ``on_decided`` is called once per prompt
    decided (a progress bar). Raises NotFoundError for an unknown
    generation, InvalidInputError for bad options, UnknownJudgeSpecError
    or JudgeUnavailableError for a judge that cannot be used, all before
    any model call.
    """
    options = options or SelectOptions()
    options.check(strategy)
    selector = _Selector(labeler, strategy, judge_spec, options)
    return await selector.run(str(generation), on_decided)


class _Selector:
    def __init__(
        self, labeler: Labeler, strategy: str, judge_spec: str | None, options: SelectOptions
    ) -> None:
        self.labeler = labeler
        self.strategy: StrategyName = strategy  # type: ignore[assignment]  # checked
        self.spec = judge_spec
        self.options = options
        self.config = self._resolve()
        self.slots = asyncio.Semaphore(options.concurrency)
        self.rater = Rater(labeler)

    def _resolve(self) -> PairJudgeConfig:
        if self.strategy == "best-vs-worst":
            self.options.rubric.resolve()
            rating = self.labeler.with_limits(
                self.labeler.resolve(self.spec), self.options.rpm, self.options.tpm
            )
            self.labeler.judge_for(rating)
            return rating
        config = self.labeler.with_limits(
            self.labeler.resolve_pairwise(self.spec), self.options.rpm, self.options.tpm
        )
        self.labeler.pairwise_judge_for(config)
        return config

    async def run(self, ref: str, on_decided: Callable[[], None] | None) -> SelectSummary:
        async with self.labeler.db.transaction() as session:
            found = await generations.find(session, ref)
            if found is None:
                raise NotFoundError(f"no generation {ref!r}", generation=ref)
            pending = (await generations.status_counts(session, found.id)).get("pending", 0)
            if pending:
                raise InvalidInputError(
                    f"generation {found.name!r} has {pending} sample(s) still pending: "
                    "finish it (run the same `referee generate` again) before selecting",
                    field="generation",
                )
            run, _ = await store.get_or_create_run(session, self._run_values(found.id))
            decided = await store.decided(session, run.id)
        summary = SelectSummary(run.id, found.id, self.strategy, self.config.label, 0, {})
        # A page of prompts at a time: memory stays bounded on a large generation.
        while True:
            async with self.labeler.db.transaction() as session:
                page = await generations.candidates_by_prompt(
                    session, found.id, offset=summary.prompts, limit=PAGE_PROMPTS
                )
            if not page:
                break
            summary.prompts += len(page)
            todo = [
                p
                for p in page
                if p.prompt_id not in decided or decided[p.prompt_id] == store.RETRIED_SKIP
            ]
            await _pool(
                todo, self.options.concurrency, lambda p: self._one(run.id, p, summary, on_decided)
            )
        async with self.labeler.db.transaction() as session:
            summary.outcomes = await store.counts(session, run.id)
            summary.done = (
                sum(summary.outcomes.values()) == summary.prompts
                and "judge_failed" not in summary.outcomes
            )
            await store.set_run_status(session, run.id, "done" if summary.done else "running")
        return summary

    def _run_values(self, generation_id: uuid.UUID) -> dict[str, Any]:
        chosen_options = self.options.key_document(self.strategy)
        document = {
            "v": KEY_SCHEMA_VERSION,
            "kind": "selection",
            "generation": str(generation_id),
            "strategy": self.strategy,
            "judge": self.config.fingerprint(),
            "options": chosen_options,
        }
        return {
            "run_key": document_key(document),
            "generation_id": generation_id,
            "strategy": self.strategy,
            "judge": self.config.label,
            "judge_spec": self.config.spec,
            "judge_config": self.config.fingerprint(),
            "options": chosen_options,
        }

    async def _one(
        self,
        run_id: uuid.UUID,
        prompt: PromptCandidates,
        summary: SelectSummary,
        on_decided: Callable[[], None] | None,
    ) -> None:
        evidence = Evidence()
        decision = await self._decide(prompt, evidence)
        summary.judged += evidence.judged
        summary.reused += evidence.reused
        values = _decision_values(run_id, prompt, decision, evidence)
        async with self.labeler.db.transaction() as session:
            written = await store.write_decision(session, values)
        summary.decided_now += int(written)
        if on_decided is not None:
            on_decided()

    async def _decide(self, prompt: PromptCandidates, evidence: Evidence) -> Decision:
        n = len(prompt.candidates)
        if n < 2:
            return strategies.skip(
                strategies.TOO_FEW,
                f"{n} distinct candidate(s) ({len(prompt.failed)} sample(s) failed): "
                "nothing to compare",
            )
        lengths = [len(c.text) for c in prompt.candidates]
        try:
            if self.strategy == "best-vs-worst":
                return await self._best_vs_worst(prompt, lengths, evidence)
            if self.strategy == "all-pairs":
                return await self._all_pairs(prompt, lengths, evidence)
            return await self._tournament(prompt, lengths, evidence)
        except (InvalidInputError, TextTooLargeError, ValidationError) as exc:
            message = (
                exc.message if isinstance(exc, InvalidInputError | TextTooLargeError) else str(exc)
            )
            return strategies.skip(strategies.REJECTED_INPUT, f"a candidate was refused: {message}")

    async def _best_vs_worst(
        self, prompt: PromptCandidates, lengths: Sequence[int], evidence: Evidence
    ) -> Decision:
        scores = await asyncio.gather(
            *(self._rate(prompt, i, evidence) for i in range(len(prompt.candidates)))
        )
        if evidence.failures:
            return _failed(evidence)
        margin = self.options.margin or DEFAULT_MARGIN
        return strategies.best_vs_worst([s for s in scores if s is not None], lengths, margin)

    async def _all_pairs(
        self, prompt: PromptCandidates, lengths: Sequence[int], evidence: Evidence
    ) -> Decision:
        pairs = strategies.all_pair_indices(len(prompt.candidates))
        verdicts = await self._compare_all(prompt, pairs, evidence)
        if evidence.failures:
            return _failed(evidence)
        return strategies.all_pairs(verdicts, lengths, self.options.margin or DEFAULT_MARGIN)

    async def _tournament(
        self, prompt: PromptCandidates, lengths: Sequence[int], evidence: Evidence
    ) -> Decision:
        n = len(prompt.candidates)
        budget = self.options.budget or strategies.default_budget(n)
        plan = strategies.Tournament(n, budget, f"{self.options.seed}:{prompt.prompt_key}")
        if not plan.feasible():
            return strategies.skip(
                strategies.BUDGET_TOO_SMALL,
                f"a budget of {budget} pair(s) cannot connect {n} candidates (needs {n - 1})",
            )
        verdicts: list[PairVerdict] = []
        pairs = plan.first_pairs()
        while pairs:
            verdicts += await self._compare_all(prompt, pairs, evidence)
            if evidence.failures:
                return _failed(evidence)
            pairs = plan.next_pairs(fit(n, votes(verdicts)))
        decision = strategies.tournament(verdicts, lengths, self.options.confidence, plan.order)
        decision.details.update(budget=plan.budget, order=plan.order)
        return decision

    async def _compare_all(
        self, prompt: PromptCandidates, pairs: Sequence[strategies.Pair], evidence: Evidence
    ) -> list[PairVerdict]:
        found = await asyncio.gather(*(self._compare(prompt, i, j, evidence) for i, j in pairs))
        return [v for v in found if v is not None]

    async def _compare(
        self, prompt: PromptCandidates, i: int, j: int, evidence: Evidence
    ) -> PairVerdict | None:
        a, b = prompt.candidates[i], prompt.candidates[j]
        pair = PairIn(
            prompt=prompt.prompt,
            response_a=a.text,
            response_b=b.text,
            metadata={"prompt_id": str(prompt.prompt_id), "candidates": [str(a.id), str(b.id)]},
        )
        async with self.slots:
            try:
                result = await self.labeler.compare(
                    pair, self.spec, rpm=self.options.rpm, tpm=self.options.tpm
                )
            except JudgeFailedError as exc:
                evidence.failures.append({"pair": [i, j], "message": exc.message, **exc.details})
                return None
        comparison = result.comparison
        winner = comparison.verdicts[-1].winner
        _count(evidence, result.created)
        evidence.judgments.append(
            {"pair": [i, j], "comparison_id": str(comparison.id), "winner": winner}
        )
        return (i, j, winner)

    async def _rate(self, prompt: PromptCandidates, i: int, evidence: Evidence) -> float | None:
        candidate = prompt.candidates[i]
        item = ResponseItemIn(
            prompt=prompt.prompt,
            response=candidate.text,
            metadata={"prompt_id": str(prompt.prompt_id), "candidate": str(candidate.id)},
        )
        async with self.slots:
            try:
                result = await self.rater.rate(
                    item,
                    self.spec,
                    self.options.rubric,
                    rpm=self.options.rpm,
                    tpm=self.options.tpm,
                )
            except JudgeFailedError as exc:
                evidence.failures.append({"candidate": i, "message": exc.message, **exc.details})
                return None
        rating = result.rating
        assert rating.score is not None  # a rating the use case returns succeeded
        _count(evidence, result.created)
        evidence.judgments.append(
            {"candidate": i, "rating_id": str(rating.id), "score": rating.score}
        )
        return float(rating.score)


def _count(evidence: Evidence, created: bool) -> None:
    if created:
        evidence.judged += 1
    else:
        evidence.reused += 1


def _failed(evidence: Evidence) -> Decision:
    first = evidence.failures[0]
    return strategies.skip(
        strategies.JUDGE_FAILED,
        f"{len(evidence.failures)} judgment(s) failed, so no preference is drawn "
        f"(first: {first['message']})",
    )


def _decision_values(
    run_id: uuid.UUID, prompt: PromptCandidates, decision: Decision, evidence: Evidence
) -> dict[str, Any]:
    candidates = prompt.candidates
    details = {
        "candidates": [
            {"id": str(c.id), "length": len(c.text), "count": c.count} for c in candidates
        ],
        "judgments": evidence.judgments,
        **decision.details,
    }
    if evidence.failures:
        details["failures"] = evidence.failures
    return {
        "run_id": run_id,
        "prompt_id": prompt.prompt_id,
        "status": "selected" if decision.selected else "skipped",
        "skip_reason": decision.skip_reason,
        "chosen_id": candidates[decision.chosen].id if decision.chosen is not None else None,
        "rejected_id": candidates[decision.rejected].id if decision.rejected is not None else None,
        "chosen_score": decision.chosen_score,
        "rejected_score": decision.rejected_score,
        "margin": decision.margin,
        "reason": decision.reason,
        "details": details,
        "judgments": len(evidence.judgments),
    }


async def _pool(
    items: Sequence[PromptCandidates],
    workers: int,
    work: Callable[[PromptCandidates], Awaitable[None]],
) -> None:
    """Run ``work`` on every item, ``workers`` at a time, in order of the items."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(items)) or 1)))
